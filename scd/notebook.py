"""What every notebook's first cell calls: validate the papermill parameters, fix the plotting
backend and paths, and return the run's Config. Bad values stop here with a clear message."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from scd.config import get_config
from scd.distill import parse_method


def setup(profile: str = "cpu", tasks=None, seeds=None, methods=None, results_dir: str = "../results",
          figures_dir: str = "../figures", data_dir: str | None = None, runs_dir: str | None = None, **overrides):
    if matplotlib.get_backend().lower() not in ("agg",) and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    if data_dir:
        os.environ["SCD_DATA_DIR"] = str(Path(data_dir).resolve())
    if runs_dir:
        os.environ["SCD_RUNS_DIR"] = str(Path(runs_dir).resolve())
    for name, value in (("seeds", seeds), ("tasks", tasks), ("methods", methods)):
        if value is not None and not isinstance(value, (list, tuple, str, int)):
            raise ValueError(f"parameter {name}={value!r}: expected a list or a comma-separated string")
    kw = dict(overrides)
    if tasks:
        kw["tasks"] = tasks
    if seeds is not None:
        kw["seeds"] = seeds
    cfg = get_config(profile, **kw)
    for m in _as_list(methods or []):
        parse_method(m)
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    return cfg


def _as_list(value) -> list:
    return value.split(",") if isinstance(value, str) else list(value)
