"""The main job: every stage for every task and seed of a profile, the results tables, then the
notebooks rendered from them.

Stages are computed here, in the process the user started, so the terminal shows each stage,
its progress bar and its result line; the notebooks only read. Each stage is compute-or-load,
so a rerun after an interruption continues where it stopped.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd

from scd import environment, ranks
from scd.config import Config
from scd.io import read_json, write_json
from scd.methods import METHODS
from scd.pipeline import base_model_stage, sft_stage
from scd.products import write_all
from scd.report import write_data_summary
from scd.results import export, has_results, results_dir
from scd.run_distill import distill_stage

class Progress:
    """One line per stage with the overall position and an ETA, for the person waiting.

    The ETA is the mean time of the stages computed so far (stages loaded from ``runs/`` take no
    time and are left out of the mean) times the stages left: rough, but honest about being so.
    """

    def __init__(self, total: int, log=print):
        self.total, self.done, self.log, self.start = total, 0, log, time.time()
        self.computed: list[float] = []

    def begin(self, name: str) -> float:
        self.log(f"[{self.done + 1}/{self.total}] {name} ...")
        return time.time()

    def end(self, line: str, started: float) -> None:
        took = time.time() - started
        self.done += 1
        if took > 1.0:
            self.computed.append(took)
        left = self.total - self.done
        eta = f", ETA ~{left * sum(self.computed) / len(self.computed) / 60:.0f} min" if self.computed and left else ""
        self.log(f"[{self.done}/{self.total}] {line} ({took:.0f}s; elapsed {(time.time() - self.start) / 60:.1f} min{eta})")


def collect(cfg: Config, methods=METHODS, progress: Progress | None = None) -> pd.DataFrame:
    """One row per (model, task, seed) with its test metrics and timings."""
    progress = progress or Progress(len(cfg.seeds) * len(cfg.tasks) * (2 + len(methods)), log=lambda *_: None)
    rows = []
    for seed in cfg.seeds:
        for task in cfg.tasks:
            for role in ("teacher", "student"):
                t = progress.begin(f"{role} SFT, {task}, seed {seed}")
                info = sft_stage(cfg, role, task, seed)
                rows.append(_row(f"{role}_sft", task, seed, info["test"], info["train_s"], info["path"]))
                progress.end(f"{role} SFT  {task} seed {seed}: test {info['test']['primary']:.3f}", t)
            for method in methods:
                t = progress.begin(f"distillation {method}, {task}, seed {seed}")
                info = distill_stage(cfg, method, task, seed)
                rows.append(_row(method, task, seed, info["test"], info["train_s"], info["path"],
                                 select_s=info["select_s"]))
                progress.end(f"{method} {task} seed {seed}: test {info['test']['primary']:.3f}", t)
    return pd.DataFrame(rows)


def _row(model, task, seed, test, train_s, path, select_s=0.0) -> dict:
    extra = {k: test[k] for k in ("accuracy", "kappa", "macro_f1", "exact_f1", "partial_f1") if k in test}
    return {"model": model, "task": task, "seed": seed, "primary": test["primary"], **extra,
            "n_unparsed": test["n_unparsed"], "gold_loss": test["gold_loss"], "train_s": train_s,
            "select_s": select_s, "path": path}


def ablation_tasks(cfg: Config, wanted: str = "crade") -> list[str]:
    """The tasks the ablations run on: ``wanted`` within the profile's tasks, else its first task."""
    return [t for t in wanted.split(",") if t in cfg.tasks] or list(cfg.tasks[:1])


def run_all(cfg: Config, root: str | Path = "results", log=print, ablations: str | None = None) -> Path:
    """Every stage (compute-or-load), then every table the notebooks show (written by rank 0 alone
    under ``accelerate launch``). ``ablations``: comma-separated tasks to run the ablations on."""
    start = time.time()
    log = log if ranks.is_main() else (lambda *_: None)
    progress = Progress(2 + len(cfg.seeds) * len(cfg.tasks) * (2 + len(METHODS)), log)
    base = {}
    for role in ("student", "teacher"):
        t = progress.begin(f"{role} base LM")
        path, _ = base_model_stage(cfg, role)
        base[role] = read_json(path.parent / "done.json")
        progress.end(f"{role} base LM: {path}", t)
    runs = collect(cfg, progress=progress)
    if not ranks.is_main():
        return results_dir(cfg, root)
    write_data_summary(Path(root))
    out = export(cfg, runs, root)
    write_json(out / "base_models.json", base)
    write_json(out / "environment.json", environment.fingerprint())
    if ablations:
        log(f"ablations on {ablation_tasks(cfg, ablations)} ...")
    paths = write_all(cfg, root, ablation_tasks(cfg, ablations) if ablations else ())
    write_json(out / "timing.json", {"wall_s": time.time() - start})
    log(f"tables -> {out} ({len(paths)} files)")
    return out


def ensure_results(cfg: Config, root: str | Path = "results", log=print) -> Path:
    """Compute-or-load for notebooks. A results folder that holds other tasks or seeds is never
    replaced by a smaller one: asking it for runs it does not have is an error that says how to
    get them."""
    if has_results(cfg, root):
        return results_dir(cfg, root)
    runs = results_dir(cfg, root) / "runs.csv"
    if runs.is_file():
        have = pd.read_csv(runs)
        raise FileNotFoundError(
            f"{runs} holds tasks {sorted(set(have.task))} and seeds {sorted(set(have.seed))}, not all of tasks "
            f"{list(cfg.tasks)} and seeds {list(cfg.seeds)}: compute them with `python -m scd reproduce "
            f"--profile {cfg.profile} --seeds {','.join(map(str, cfg.seeds))}`, or pass an empty results_dir")
    log(f"no results in {results_dir(cfg, root)}: computing every stage of profile {cfg.profile} first "
        f"(tasks {list(cfg.tasks)}, seeds {list(cfg.seeds)}); progress below")
    return run_all(cfg, root, log)


def notebook_paths(notebooks_dir: str | Path = "notebooks") -> list[Path]:
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks_dir}")
    return paths


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; its executed copy is kept at ``path``."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def run_notebooks(parameters: dict, notebooks_dir: str | Path = "notebooks", output_dir: str | Path | None = None,
                  kernel: str = "scd", log=print, logs_dir: str | Path | None = None) -> dict[str, float]:
    """Execute every notebook in order with papermill. Each runs into a scratch copy that replaces
    ``output_dir/<name>`` (default: the notebook itself) only once it has run to the end; a failed
    copy stays in ``logs_dir`` and the committed notebook is left as it was.

    Kernels start in the caller's working folder, so relative paths mean what the user typed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logs = Path(logs_dir) if logs_dir else Path(output_dir or notebooks_dir) / ".executing"
    logs.mkdir(parents=True, exist_ok=True)
    timings = {}
    for path in notebook_paths(notebooks_dir):
        target = Path(output_dir or path.parent) / path.name
        scratch = logs / path.name
        declared = papermill.inspect_notebook(str(path))
        start = time.time()
        try:
            papermill.execute_notebook(str(path), str(scratch), kernel_name=kernel,
                                       parameters={k: v for k, v in parameters.items() if k in declared},
                                       cwd=os.getcwd(), progress_bar=False,
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except PapermillExecutionError as err:
            first = next((line for line in str(err.source).splitlines() if line.strip()), "")
            raise NotebookFailed(f"{path.name} failed in cell {err.cell_index} ({first!r}): {err.ename}: {err.evalue}; "
                                 f"the executed copy is {scratch}; {target} is unchanged", scratch) from err
        except BaseException:
            log(f"{path.name} interrupted; {target} is unchanged (partial copy: {scratch})")
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), str(target))  # a rename when both are on one file system
        timings[path.name] = time.time() - start
        log(f"{path.name}: {timings[path.name]:.0f}s -> {target}")
    if not logs_dir and not any(logs.iterdir()):
        logs.rmdir()
    return timings
