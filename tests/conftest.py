"""Shared fixtures: the real benchmark data (SCD_DATA_DIR) and one smoke-profile run per session."""
import scd  # noqa: F401  (first: pins the CPU kernels before any test module loads torch)
import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("SCD_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")).resolve()
os.environ.setdefault("SCD_QUIET", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "jmed-llm").is_dir():
        pytest.fail(f"benchmark data not found at {DATA}: set SCD_DATA_DIR to the shared data folder")
    os.environ["SCD_DATA_DIR"] = str(DATA)
    return DATA


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """One runs/ folder for the whole session, so expensive smoke stages are built once."""
    path = tmp_path_factory.mktemp("runs")
    os.environ["SCD_RUNS_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def smoke_cfg(data_dir, runs_dir):
    from scd.core.config import get_config

    return get_config("smoke")


REPO = Path(__file__).resolve().parents[1]


def _git_status() -> set[str] | None:
    import subprocess

    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.splitlines())


def pytest_sessionstart(session):
    session.config._scd_status = _git_status()


def pytest_sessionfinish(session, exitstatus):
    """The suite writes only to temporary folders: anything it left in the working tree fails the run."""
    before, after = getattr(session.config, "_scd_status", None), _git_status()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        print("\nthe test suite changed the working tree (tests must write to temporary folders):\n  "
              + "\n  ".join(new))
        session.exitstatus = 1


# Fixtures whose tests train or run the package end to end; with them, a test is marked slow and
# left out of `make test-fast` (the whole suite, `make test`, runs everything).
TRAINING_FIXTURES = {"runs_dir", "clone", "converted", "own_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)

