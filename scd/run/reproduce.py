"""The main job (``make reproduce``): every stage for every task and seed of a profile, the
CRADE ablations and every table, then the notebooks rendered from them and a reproduction
report that compares the numbers with the committed ones.

Stages are computed here, in the process the user started, so the terminal shows each stage,
its progress bar and its result line; the notebooks only read. Each stage is compute-or-load,
so a rerun after an interruption continues where it stopped. By default everything goes to
``reproduction/<profile>-seeds<S>/`` (ignored by git), so a one-seed run never replaces the
committed three-seed files; maintainers regenerate those with ``--in-place``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from scd.analysis import ablations
from scd.core import environment
from scd.run import parts
from scd.core import ranks
from scd.core.config import Config, get_config
from scd.core.methods import is_baseline, sft_role
from scd.core.io import project_path, read_json, user_path, write_csv, write_json, write_table
from scd.train.models import load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.scoring.reference import reference_rows, reference_scores
from scd.analysis.products import write_all
from scd.run.render import NotebookFailed, run_notebooks
from scd.analysis.data_report import prompt_cuts, write_data_summary
from scd.run.compare import write_report
from scd.run.readme import update_readme
from scd.analysis.export import export, has_results, reference_path, results_dir
from scd.stages.distill import check_shared_vocabulary, distill_stage
from scd.stages.store import runs_root


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


def collect(cfg: Config, progress: Progress | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (model, task, seed) with its test metrics and timings, and the stage records."""
    progress = progress or Progress(len(cfg.seeds) * len(cfg.tasks) * len(cfg.models), log=lambda *_: None)
    rows, records = [], {}
    for seed in cfg.seeds:
        for task in cfg.tasks:
            for model in cfg.models:
                role = sft_role(model) if is_baseline(model) else None
                what = f"{role} SFT, {task}, seed {seed}" if role else f"{model}, {task}, seed {seed}"
                t = progress.begin(what)
                if role:
                    record, select_s = sft_stage(cfg, role, task, seed), 0.0
                else:
                    record = distill_stage(cfg, model, task, seed)
                    select_s = record.select_s
                records[(model, task, seed)] = record
                rows.append({"model": model, "task": task, "seed": seed, "primary": record.test.primary,
                             **record.test.named(), "n_unparsed": record.test.n_unparsed,
                             "gold_loss": record.test.gold_loss, "train_s": record.train_s, "select_s": select_s})
                progress.end(f"{what}: test {record.test.primary:.3f}", t)
    return pd.DataFrame(rows), records


def ablation_tasks(cfg: Config, wanted: str = "crade") -> list[str]:
    """The tasks the ablations run on: ``wanted`` within the profile's tasks, else its first task."""
    return [t for t in wanted.split(",") if t in cfg.tasks] or list(cfg.tasks[:1])


def run_ablations(cfg: Config, tasks, results_root="results", log=print, method: str = "scd_aw") -> pd.DataFrame:
    """Every ablation variant of ``method`` on ``tasks`` and the config's seeds; per-item test
    rows are kept with the results so that effects can be recomputed from results/ alone."""
    rows = []
    for name, overrides in ablations.variants(cfg).items():
        for task in tasks:
            for seed in cfg.seeds:
                record = distill_stage(cfg.replace(**overrides), method, task, seed)  # every rank trains
                if ranks.is_main():
                    write_csv(ablations.samples_path(cfg, results_root, name, method, task, seed),
                              pd.read_csv(Path(record.path) / "test.csv", dtype={"id": str}))
                rows.append({"variant": name, "method": method, "task": task, "seed": seed,
                             "primary": record.test.primary, "dev_best": max(s.dev.primary for s in record.stages),
                             "train_s": record.train_s, "select_s": record.select_s,
                             "checkpoints": " ".join(s.checkpoint for s in record.stages)})
                log(f"{name:32s} {method} {task} seed {seed}: test {rows[-1]['primary']:.3f}")
    return pd.DataFrame(rows)


def run_all(cfg: Config, results_root: str | Path = "results", log=print, ablations: str | None = None,
            merge: bool = False) -> Path:
    """Every stage (compute-or-load), then every table the notebooks show (written by rank 0 alone
    under ``accelerate launch``). ``ablations``: comma-separated tasks to run the ablations on.
    ``merge``: keep the (task, seed) runs in ``results_root`` this run does not recompute (``scd.run.parts``)."""
    start = time.time()
    kept, union = parts.kept_rows(cfg, results_root) if merge else ({}, cfg)  # read by every rank before anything is written
    log = log if ranks.is_main() else (lambda *_: None)
    progress = Progress(2 + len(cfg.seeds) * len(cfg.tasks) * len(cfg.models), log)
    base = {}
    for role in ("student", "teacher"):
        t = progress.begin(f"{role} base LM")
        path, base[role] = base_model_stage(cfg, role)
        progress.end(f"{role} base LM: {path}", t)
    check_shared_vocabulary(base["teacher"], base["student"])  # before any training
    runs, records = collect(cfg, progress=progress)
    abl_tasks = ablation_tasks(union, ablations) if ablations else []
    done = set(kept["ablations"]["seed"]) if "ablations" in kept else set()
    abl_seeds = tuple(s for s in union.seeds if s not in done) if abl_tasks else ()
    if abl_seeds:  # every seed of the union that has no ablation rows yet
        log(f"ablations on {abl_tasks}, seeds {list(abl_seeds)} ...")
        table = run_ablations(union.replace(seeds=abl_seeds), abl_tasks, results_root, log)
    if not ranks.is_main():
        return results_dir(cfg, results_root)
    if not cfg.task_cards:  # the benchmark's data summary (built-in tasks only)
        write_data_summary(Path(results_root))
    out = export(cfg, runs, records, results_root)
    reference = []
    for task in union.tasks:  # what the train split alone gives (seconds; no LM)
        splits = task_splits(cfg, task)
        write_csv(reference_path(cfg, task, results_root), reference_rows(task, splits["train"], splits["test"]))
        reference += reference_scores(task, splits)
    write_table(out / "reference_scores", pd.DataFrame(reference))
    write_table(out / "prompt_cuts", prompt_cuts(union, load_tokenizer(path)))
    if abl_seeds:
        write_csv(out / "ablations.csv", table)
    parts.merge(cfg, union, results_root, kept, bool(abl_seeds))
    machine = environment.fingerprint()
    write_json(out / "environment_by_seed.json", parts.environments(cfg, union, results_root, machine))
    cfg = union
    write_json(out / "config.json", cfg.to_dict())
    write_json(out / "base_models.json", {role: record.to_json() for role, record in base.items()})
    write_json(out / "environment.json", machine)
    paths = write_all(cfg, results_root, abl_tasks)
    # a timed run only when this invocation computed every stage (none loaded from runs/)
    write_json(out / "timing.json", {"wall_s": time.time() - start, "stages": progress.total,
                                     "stages_computed": len(progress.computed), "seeds": list(union.seeds)})
    log(f"tables -> {out} ({len(paths)} files)")
    return out


def ensure_results(cfg: Config, results_root: str | Path = "results", log=print) -> Path:
    """Compute-or-load for notebooks. A results folder that holds other tasks or seeds is never
    replaced by a smaller one: asking it for runs it does not have is an error that says how to
    get them."""
    if has_results(cfg, results_root):
        return results_dir(cfg, results_root)
    runs = results_dir(cfg, results_root) / "runs.csv"
    if runs.is_file():
        have = pd.read_csv(runs)
        raise FileNotFoundError(
            f"{runs} holds tasks {sorted(set(have.task))} and seeds {sorted(set(have.seed))}, not all of tasks "
            f"{list(cfg.tasks)} and seeds {list(cfg.seeds)}: compute them with `python -m scd reproduce "
            f"--profile {cfg.profile} --seeds {','.join(map(str, cfg.seeds))}`, or pass an empty results_dir")
    log(f"no results in {results_dir(cfg, results_root)}: computing every stage of profile {cfg.profile} first "
        f"(tasks {list(cfg.tasks)}, seeds {list(cfg.seeds)}); progress below")
    return run_all(cfg, results_root, log)


def ensure_ablations(cfg: Config, tasks, results_root="results", log=print) -> pd.DataFrame:
    """Compute-or-load of the ablation table, by the rule of ``ensure_results``: computed only
    into a results folder that has none."""
    path = results_dir(cfg, results_root) / "ablations.csv"
    if not path.is_file():
        write_csv(path, run_ablations(cfg, tasks, results_root, log))
    return ablations.load(cfg, tasks, results_root)


# ------------------------------------------------------------------ the commands
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
             params: dict | None = None, merge: bool = False) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars: noise between the stage lines
    start = time.time()
    out_dir = user_path(out) if out else project_path("reproduction") / seeds_tag(cfg)
    if in_place:
        results_root, figures, notebooks_out = project_path("results"), project_path("figures"), None
        if not merge:  # merging keeps the committed runs, and refuses a config they do not match
            refuse_shrinking(cfg, results_root)
    else:
        results_root, figures, notebooks_out = out_dir / "results", out_dir / "figures", out_dir / "notebooks"
    log = tee(out_dir / "logs" / "run.log")
    log(f"profile {cfg.profile}, tasks {','.join(cfg.tasks)}, seeds {','.join(map(str, cfg.seeds))}")
    log(f"results -> {results_root}, figures -> {figures}, notebooks -> {notebooks_out or 'in place'}; "
        f"checkpoints and caches -> {runs_root()}; log -> {out_dir / 'logs' / 'run.log'}")
    run_all(cfg, results_root, log, ablations=ablations, merge=merge)
    if merge:  # the notebooks and the report show every task and seed the results now hold
        made = read_json(results_dir(cfg, results_root) / "config.json")
        cfg = cfg.replace(tasks=tuple(made["tasks"]), seeds=tuple(made["seeds"]))
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
    if in_place and cfg.profile == "cpu":  # the README's results section shows the committed cpu results
        changed = update_readme(project_path("README.md"), results_root)
        log(f"README results section {'rewritten' if changed else 'unchanged'}")
    log(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


def refuse_shrinking(cfg: Config, results_root) -> None:
    """``--in-place`` replaces the committed results of the profile: never by fewer tasks or seeds."""
    runs = results_dir(cfg, results_root) / "runs.csv"
    if not runs.is_file():
        return
    have = pd.read_csv(runs)
    lost = sorted(set(have.task) - set(cfg.tasks)), sorted(set(have.seed) - set(cfg.seeds))
    if lost[0] or lost[1]:
        raise SystemExit(f"--in-place would replace {runs} by a run without tasks {lost[0]} / seeds {lost[1]}: "
                         "run the same tasks and seeds, or leave out --in-place (writes reproduction/)")


def render_committed(profile: str, seeds: str | None = None, overrides: dict | None = None) -> int:
    """Re-execute the notebooks in place from the committed results; nothing is trained."""
    results_root = project_path("results")
    runs = results_dir(get_config(profile), results_root) / "runs.csv"
    if not runs.is_file():
        raise SystemExit(f"no committed results in {runs.parent}: run `make reproduce` (computes them) instead")
    seeds = seeds or ",".join(map(str, sorted(set(pd.read_csv(runs)["seed"]))))
    cfg = get_config(profile, seeds=seeds, **(overrides or {}))
    if not has_results(cfg, results_root):
        raise SystemExit(f"{runs} lacks some of tasks {list(cfg.tasks)} x seeds {list(cfg.seeds)}")
    log = tee(project_path("reproduction") / f"notebooks-{seeds_tag(cfg)}" / "run.log")
    params = {"profile": profile, "seeds": list(cfg.seeds), "results_dir": str(results_root),
              "figures_dir": str(project_path("figures"))}
    return 0 if _render(params, None, project_path("reproduction") / f"notebooks-{seeds_tag(cfg)}", log) else 1


def _render(params: dict, notebooks_out, logs: Path, log) -> dict | None:
    """Per-notebook seconds, or None after saying which notebook failed and where its copy is."""
    try:
        return run_notebooks(params, project_path("notebooks"), notebooks_out, log=log, logs_dir=logs)
    except NotebookFailed as err:
        log(f"FAILED: {err}")
        return None
