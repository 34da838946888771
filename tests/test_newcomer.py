"""The README's commands as a newcomer types them, on a fresh clone with ``../shared`` beside it.

The clone gets its own ``.venv`` made by the Makefile; it sees this environment's installed
packages through a ``.pth`` line (so nothing is downloaded but the build backend), and installs
the clone itself, editable, as the README's command does.
"""
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_command(prefix: str) -> str:
    """The first line of the README's code blocks that starts with ``prefix``, verbatim."""
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            if line.startswith(prefix):
                return line.split("  #")[0].strip()
    raise AssertionError(f"README has no command starting with {prefix!r}")


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.iterdir()}


@pytest.fixture(scope="module")
def clone(data_dir, tmp_path_factory):
    """A clean clone of this repository's HEAD at <tmp>/main, the data at <tmp>/shared/data."""
    top = tmp_path_factory.mktemp("newcomer")
    subprocess.run(["git", "clone", "-q", str(REPO), str(top / "main")], check=True)
    (top / "shared").mkdir()
    (top / "shared" / "data").symlink_to(data_dir)
    venv = top / "main" / ".venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return top


def newcomer_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCD_", "VIRTUAL_ENV", "PYTHON"))}
    return env | {"SCD_QUIET": "1"}


def test_readme_main_command_on_smoke_from_a_fresh_clone(clone):
    command = readme_command("SCD_DATA_DIR=../shared/data make reproduce")
    before = listing(clone)
    proc = subprocess.run(["bash", "-c", f"PROFILE=smoke {command}"], cwd=clone / "main", env=newcomer_env(),
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert listing(clone) == before, "the main job wrote outside the clone"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone / "main", capture_output=True, text=True)
    assert status.stdout == "", f"the main job changed tracked files:\n{status.stdout}"
    out = clone / "main" / "reproduction" / "smoke-seeds0"
    report = (out / "report.md").read_text()
    assert "verdict: " in proc.stdout and "**Verdict: " in report
    assert "[10/10]" in proc.stdout  # the stage lines reach the terminal
    assert "without encryption" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == sorted(
        p.name for p in (clone / "main" / "notebooks").glob("[0-9]*.ipynb"))
    if "should be bitwise identical" in report:  # same CPU kind and versions as the committed smoke run
        assert "**Verdict: identical" in report, report[:3000]


@pytest.mark.parametrize("where", [".", "notebooks"])
def test_readme_papermill_line_from_root_and_from_notebooks(clone, where, tmp_path):
    line = readme_command("papermill notebooks/")
    args = shlex.split(line)
    args[2] = str(tmp_path / "out.ipynb")  # the output notebook goes to a temporary folder
    if where == "notebooks":
        args[1] = args[1].removeprefix("notebooks/")
    python = clone / "main" / ".venv" / "bin" / "python"
    if not (python.parent / ".installed").exists():
        pytest.skip("the clone's environment is made by the main-command test")
    before = listing(clone)
    proc = subprocess.run([str(python), "-m", "papermill", *args[1:]], cwd=clone / "main" / where,
                          env=newcomer_env() | {"SCD_DATA_DIR": str(clone / "shared" / "data")},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert listing(clone) == before, "papermill wrote beside the repository"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone / "main", capture_output=True, text=True)
    assert status.stdout == "", status.stdout
    assert (tmp_path / "out.ipynb").is_file()
