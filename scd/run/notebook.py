"""What every notebook's first cell calls: validate the papermill parameters, fix the plotting
backend and paths, and return the run's Config and folders. Bad values stop here with a clear
message.

Paths a user gives are resolved against the kernel's working folder, which is the folder the
command was typed in (papermill, ``python -m scd``); defaults are the project's own folders,
wherever the kernel runs. Notebooks only read results and save figures where told to, so
executing one never changes a committed file unless ``figures_dir`` points at ``figures/``.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from scd.core.config import Config, as_tuple, get_config
from scd.core.io import project_path, user_path
from scd.core.methods import parse_method


def setup(profile: str = "cpu", tasks=None, seeds=None, methods=None, results_dir: str | None = None,
          figures_dir: str | None = None, data_dir: str | None = None, runs_dir: str | None = None,
          **overrides) -> tuple[Config, Path, Path | None]:
    """-> (config, results root, figures folder or None: figures shown, not saved)."""
    figures = folders(figures_dir, data_dir, runs_dir)
    kw = {k: v for k, v in overrides.items() if v is not None}  # a None parameter: the profile's value
    if tasks:
        kw["tasks"] = tasks
    if seeds is not None:
        kw["seeds"] = seeds
    if methods:
        kw["methods"] = [parse_method(m).name for m in as_tuple("methods", methods)]
    cfg = get_config(profile, **kw)
    results = user_path(results_dir) if results_dir else project_path("results")
    return cfg, results, figures


def folders(figures_dir: str | None = None, data_dir: str | None = None, runs_dir: str | None = None) -> Path | None:
    """The plotting backend, the data and runs folders for the kernel; -> the figures folder or
    None (figures shown, not saved)."""
    # progress bars (ours, the Trainer's, weight loading) would fill a rendered notebook with widget
    # stubs; the stage lines still print. Set SCD_QUIET=0 before starting the kernel to see them.
    os.environ.setdefault("SCD_QUIET", "1")
    if os.environ["SCD_QUIET"] == "1":
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if matplotlib.get_backend().lower() not in ("agg",) and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    if data_dir:
        os.environ["SCD_DATA_DIR"] = str(user_path(data_dir))
    if runs_dir:
        os.environ["SCD_RUNS_DIR"] = str(user_path(runs_dir))
    figures = user_path(figures_dir) if figures_dir else None
    if figures:
        figures.mkdir(parents=True, exist_ok=True)
    return figures


def train_curves(cfg: Config, results_root: Path, figures_dir: Path | None) -> None:
    """Notebook 4's training curves (``scd.analysis.figures.train_curves``), or one sentence where
    the results were written before the curves were exported."""
    from scd.analysis import export, figures

    curves = export.load_train_curves(cfg, results_root)
    if curves is None or curves.empty:
        print("The distillation stages' training curves appear here after the next run of these results "
              "(`python -m scd reproduce`), which writes train_curves.csv.")
        return
    figures.save(figures.train_curves(curves), f"{cfg.profile}_train_curves", figures_dir)
