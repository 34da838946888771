"""One numerical path: the kernel switches are set before torch loads, in every process the
package starts (the CLI's stages, the notebooks' kernels), and turned off on request."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from scd.core import numerics

REPO = Path(__file__).resolve().parents[1]
REPORT = "import json; from scd.core import numerics; print('NUMERICS', json.dumps(numerics.in_force()))"


def bare_env(**extra) -> dict:
    """The environment of a user's shell: none of the switches set."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.SWITCHES and k != numerics.OFF}
    return env | extra


def reported(text: str) -> dict:
    line = next(line for line in text.splitlines() if line.startswith("NUMERICS "))
    return json.loads(line.removeprefix("NUMERICS "))


def python(code: str, **env) -> dict:
    done = subprocess.run([sys.executable, "-c", code], env=bare_env(**env), cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return reported(done.stdout)


def test_switches_are_wanted_on_x86_only_and_off_on_request():
    assert numerics.wanted({}, "x86_64") == numerics.SWITCHES
    assert numerics.wanted({numerics.OFF: "1"}, "x86_64") == {}
    assert numerics.wanted({numerics.OFF: "0"}, "x86_64") == numerics.SWITCHES
    assert numerics.wanted({}, "aarch64") == {}
    env = {"MKL_CBWR": "AVX2"}  # a switch the user set is kept
    numerics.pin(env)
    if numerics.wanted({}):
        assert env == numerics.SWITCHES | {"MKL_CBWR": "AVX2"}


def test_the_package_pins_its_own_process_and_the_pin_changes_the_kernels():
    pinned = python("import scd.run.reproduce; " + REPORT)  # what `python -m scd reproduce` loads
    assert pinned["switches"] == numerics.wanted() and not pinned["native"]
    native = python(REPORT, **{numerics.OFF: "1"})
    assert native["native"] and all(v is None for v in native["switches"].values())
    explicit = python("import os; os.environ.update(" + repr(numerics.SWITCHES) + "); import torch; " + REPORT,
                      **{numerics.OFF: "1"})
    assert explicit["probe"] == pinned["probe"]  # the probe measures the switches, not the import
    assert numerics.in_force()["probe"] == pinned["probe"]  # this test process too (conftest imports scd first)


def test_a_notebook_kernel_inherits_the_switches_before_it_imports_anything(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import json, os; print('BEFORE', json.dumps({k: os.environ.get(k) for k in "
                                          f"{sorted(numerics.SWITCHES)!r}}}))"),
                nbformat.v4.new_code_cell(REPORT)]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "01_probe.ipynb")
    code = ("from scd.run.render import run_notebooks; "
            f"run_notebooks({{}}, {str(tmp_path / 'nb')!r}, {str(tmp_path / 'out')!r}, log=lambda *a: None)")
    done = subprocess.run([sys.executable, "-c", code], env=bare_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = nbformat.read(tmp_path / "out" / "01_probe.ipynb", as_version=4)
    text = "".join(o.get("text", "") for cell in out.cells for o in cell.get("outputs", []))
    before = json.loads(next(line for line in text.splitlines() if line.startswith("BEFORE ")).removeprefix("BEFORE "))
    assert {k: v for k, v in before.items() if v is not None} == numerics.wanted()
    assert reported(text)["probe"] == numerics.in_force()["probe"]
