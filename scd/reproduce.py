"""The main job: every stage for every task and seed of a profile, then the results tables.

Each stage is compute-or-load, so a rerun after an interruption continues where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from scd import ranks, tables
from scd.config import Config
from scd.io import read_json, write_json, write_table
from scd.pipeline import base_model_stage, sft_stage
from scd.report import write_data_summary
from scd.results import export, has_results, results_dir
from scd.run_distill import distill_stage

METHODS = ("td", "cd", "scd", "td_aw", "cd_aw", "scd_aw")


def collect(cfg: Config, methods=METHODS, log=print) -> pd.DataFrame:
    """One row per (model, task, seed) with its test metrics and timings."""
    rows = []
    for seed in cfg.seeds:
        for task in cfg.tasks:
            for role in ("teacher", "student"):
                t = time.time()
                info = sft_stage(cfg, role, task, seed)
                rows.append(_row(f"{role}_sft", task, seed, info["test"], info["train_s"], info["path"]))
                log(f"{role} SFT  {task:15s} seed {seed}: test {info['test']['primary']:.3f} ({time.time() - t:.0f}s)")
            for method in methods:
                t = time.time()
                info = distill_stage(cfg, method, task, seed)
                rows.append(_row(method, task, seed, info["test"], info["train_s"], info["path"],
                                 select_s=info["select_s"]))
                log(f"{method:11s}{task:15s} seed {seed}: test {info['test']['primary']:.3f} ({time.time() - t:.0f}s)")
    return pd.DataFrame(rows)


def _row(model, task, seed, test, train_s, path, select_s=0.0) -> dict:
    extra = {k: test[k] for k in ("accuracy", "kappa", "macro_f1", "exact_f1", "partial_f1") if k in test}
    return {"model": model, "task": task, "seed": seed, "primary": test["primary"], **extra,
            "n_unparsed": test["n_unparsed"], "gold_loss": test["gold_loss"], "train_s": train_s,
            "select_s": select_s, "path": path}


def run_all(cfg: Config, root: str | Path = "results", log=print) -> Path:
    """Every stage (compute-or-load), then the small outputs the notebooks read (written by rank 0
    alone under ``accelerate launch``)."""
    start = time.time()
    log = log if ranks.is_main() else (lambda *_: None)
    base = {}
    for role in ("student", "teacher"):
        path, _ = base_model_stage(cfg, role)
        base[role] = read_json(path.parent / "done.json")
        log(f"{role} base LM: {path}")
    runs = collect(cfg, log=log)
    if not ranks.is_main():
        return results_dir(cfg, root)
    _, paths = write_data_summary(Path(root))
    log("data summary -> " + ", ".join(map(str, paths)))
    out = export(cfg, runs, root)
    write_json(out / "base_models.json", base)
    scores = tables.score_table(cfg, root=root)  # the notebook's Table 1, with intervals
    write_table(out / "scores_ci", scores)
    paths = write_table(out / "table1_ci", tables.table1(scores))
    write_json(out / "timing.json", {"wall_s": time.time() - start})
    log("tables -> " + ", ".join(map(str, paths)))
    return out


def ensure_results(cfg: Config, root: str | Path = "results", log=print) -> Path:
    """Compute-or-load for notebooks: run the pipeline only if its outputs are missing."""
    return results_dir(cfg, root) if has_results(cfg, root) else run_all(cfg, root, log)


def notebook_paths(notebooks_dir: str | Path = "notebooks") -> list[Path]:
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks_dir}")
    return paths


def run_notebooks(parameters: dict, notebooks_dir: str | Path = "notebooks", output_dir: str | Path | None = None,
                  kernel: str = "scd", log=print) -> dict[str, float]:
    """Execute every notebook in order with papermill; executed copies go to ``output_dir``
    (default: in place, so the committed notebooks show the latest outputs)."""
    import papermill

    timings = {}
    for path in notebook_paths(notebooks_dir):
        target = Path(output_dir or path.parent) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        papermill.execute_notebook(str(path), str(target), parameters=parameters, kernel_name=kernel,
                                   cwd=str(path.parent), progress_bar=False)
        timings[path.name] = time.time() - start
        log(f"{path.name}: {timings[path.name]:.0f}s -> {target}")
    return timings
