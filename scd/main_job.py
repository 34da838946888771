"""``make reproduce`` and ``make notebooks``: what a reader of the package runs, start to end.

The main job computes what is missing, renders the notebooks from it and compares the numbers
with the committed ones. By default everything it writes goes to ``reproduction/<profile>-seeds<S>/``
(ignored by git), so a one-seed run never replaces the committed three-seed files; maintainers
regenerate those with ``--in-place``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from scd.config import Config, get_config
from scd.io import project_path, user_path, write_json
from scd.pipeline import runs_root
from scd.reproduce import NotebookFailed, run_all, run_notebooks
from scd.reproduction import write_report
from scd.results import has_results, results_dir


def tee(path: Path, echo=print):
    """A log function that prints and appends the same line to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        echo(line, flush=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return log


def seeds_tag(cfg: Config) -> str:
    return f"{cfg.profile}-seeds{'-'.join(map(str, cfg.seeds))}"


def main_job(cfg: Config, out: str | None = None, in_place: bool = False, ablations: str = "crade",
             params: dict | None = None) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars: noise between the stage lines
    start = time.time()
    out_dir = user_path(out) if out else project_path("reproduction") / seeds_tag(cfg)
    if in_place:
        results_root, figures, notebooks_out = project_path("results"), project_path("figures"), None
        refuse_shrinking(cfg, results_root)
    else:
        results_root, figures, notebooks_out = out_dir / "results", out_dir / "figures", out_dir / "notebooks"
    log = tee(out_dir / "logs" / "run.log")
    log(f"profile {cfg.profile}, tasks {','.join(cfg.tasks)}, seeds {','.join(map(str, cfg.seeds))}")
    log(f"results -> {results_root}, figures -> {figures}, notebooks -> {notebooks_out or 'in place'}; "
        f"checkpoints and caches -> {runs_root()}; log -> {out_dir / 'logs' / 'run.log'}")
    run_all(cfg, results_root, log, ablations=ablations)
    params = {"profile": cfg.profile, "tasks": ",".join(cfg.tasks), "seeds": list(cfg.seeds),
              "results_dir": str(results_root), "figures_dir": str(figures), "ablation_tasks": ablations} | (params or {})
    timings = _render(params, notebooks_out, out_dir / "logs", log)
    if timings is None:
        return 1
    timing = results_dir(cfg, results_root) / f"notebook_timing_seeds{'-'.join(map(str, cfg.seeds))}.json"
    with tempfile.TemporaryDirectory() as tmp:
        line, path = write_report(cfg, results_root, out_dir, Path(tmp))
    write_json(timing, timings | {"total_s": time.time() - start})
    log(f"reproduction report -> {path}")
    log(f"verdict: {line}")
    log(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


def refuse_shrinking(cfg: Config, root) -> None:
    """``--in-place`` replaces the committed results of the profile: never by fewer tasks or seeds."""
    runs = results_dir(cfg, root) / "runs.csv"
    if not runs.is_file():
        return
    have = pd.read_csv(runs)
    lost = sorted(set(have.task) - set(cfg.tasks)), sorted(set(have.seed) - set(cfg.seeds))
    if lost[0] or lost[1]:
        raise SystemExit(f"--in-place would replace {runs} by a run without tasks {lost[0]} / seeds {lost[1]}: "
                         "run the same tasks and seeds, or leave out --in-place (writes reproduction/)")


def render_committed(profile: str, seeds: str | None = None, overrides: dict | None = None) -> int:
    """Re-execute the notebooks in place from the committed results; nothing is trained."""
    root = project_path("results")
    runs = results_dir(get_config(profile), root) / "runs.csv"
    if not runs.is_file():
        raise SystemExit(f"no committed results in {runs.parent}: run `make reproduce` (computes them) instead")
    seeds = seeds or ",".join(map(str, sorted(set(pd.read_csv(runs)["seed"]))))
    cfg = get_config(profile, seeds=seeds, **(overrides or {}))
    if not has_results(cfg, root):
        raise SystemExit(f"{runs} lacks some of tasks {list(cfg.tasks)} x seeds {list(cfg.seeds)}")
    log = tee(project_path("reproduction") / f"notebooks-{seeds_tag(cfg)}" / "run.log")
    params = {"profile": profile, "seeds": list(cfg.seeds), "results_dir": str(root),
              "figures_dir": str(project_path("figures"))}
    return 0 if _render(params, None, project_path("reproduction") / f"notebooks-{seeds_tag(cfg)}", log) else 1


def _render(params: dict, notebooks_out, logs: Path, log) -> dict | None:
    """Per-notebook seconds, or None after saying which notebook failed and where its copy is."""
    try:
        return run_notebooks(params, project_path("notebooks"), notebooks_out, log=log, logs_dir=logs)
    except NotebookFailed as err:
        log(f"FAILED: {err}")
        return None
