"""Small, committed outputs of a profile's run, gathered from the heavy ``runs/`` folder.

Notebooks read only these files, so a reader (or nbval in CI) renders every table and figure
without the checkpoints; when they are missing for the requested tasks and seeds the
notebook computes them first (compute-or-load).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from scd.core.io import read_json, write_csv
from scd.core.methods import is_baseline, parse_method

if TYPE_CHECKING:
    from scd.core.config import Config


def results_dir(cfg: Config, results_root: str | Path = "results") -> Path:
    return Path(results_root) / cfg.profile


CURVE_COLUMNS = ["task", "seed", "model", "stage", "step", "loss", "kd", "ce", "w_mean", "learning_rate"]


def stage_curve(stage_dir: Path) -> list[dict]:
    """One distillation stage's Trainer log records (every ``logging_steps``), from the
    trainer_state.json of its newest epoch checkpoint: the stage keeps its checkpoints, and the
    Trainer logs a step before it saves it. A stage without checkpoints gives no rows."""
    from scd.train.training import last_checkpoint  # only a run that has stages reads them

    last = last_checkpoint(Path(stage_dir, "trainer"))
    if last is None:
        return []
    return [{"step": r["step"], **{k: r.get(k) for k in CURVE_COLUMNS[5:]}}
            for r in read_json(last / "trainer_state.json")["log_history"] if "loss" in r]


def export(cfg: Config, runs: pd.DataFrame, records: dict, results_root: str | Path = "results") -> Path:
    """Write runs.csv, per-sample test rows, trajectories, stage logs, training curves and weights
    (the config is written by the caller, which knows every seed the folder ends up holding).

    ``records``: the stage record of every row of ``runs``, by (model, task, seed)."""
    out = results_dir(cfg, results_root)
    trajectory, stages, curves = [], [], []
    for row in runs.itertuples():
        record = records[(row.model, row.task, row.seed)]
        write_csv(out / "samples" / row.task / f"{row.model}_seed{row.seed}.csv",
                  pd.read_csv(Path(record.path) / "test.csv"))
        ident = {"model": row.model, "task": row.task, "seed": row.seed}
        if is_baseline(row.model):
            trajectory += [ident | {"checkpoint": t.checkpoint, "step": t.step, "epoch": t.epoch,
                                    "dev_primary": t.dev.primary, "dev_selection": t.dev.selection,
                                    "dev_gold_loss": t.dev.gold_loss,
                                    "best": t.checkpoint == record.best} for t in record.trajectory]
            continue
        stages += [ident | {"stage": s.stage, "checkpoint": s.checkpoint, "checkpoint_index": s.checkpoint_index,
                            "candidate_scores": json.dumps(s.candidate_scores),
                            "kl_from_best": json.dumps(s.kl_from_best), "kl_student": json.dumps(s.kl_student),
                            "select_s": s.select_s,
                            "train_s": s.train_s, "eval_s": s.eval_s, "steps": s.steps, "train_loss": s.train_loss,
                            "dev_primary": s.dev.primary, "dev_selection": s.dev.selection,
                            "best": f"stage{s.stage}" == record.best,
                            **{f"w_{k}": v for k, v in s.weights.items()}} for s in record.stages]
        curves += [ident | {"stage": s.stage} | row for s in record.stages
                   for row in stage_curve(Path(record.path) / f"stage{s.stage}")]
        if parse_method(row.model).weighting == "aw":
            weights = read_json(Path(record.path) / "weights.json")
            write_csv(out / "weights" / row.task / f"{row.model}_seed{row.seed}.csv",
                      pd.DataFrame({"id": list(weights), "w": list(weights.values())}))
    write_csv(out / "runs.csv", runs)
    write_csv(out / "stage_seconds.csv", stage_seconds(cfg, runs, records))
    write_csv(out / "trajectory.csv", pd.DataFrame(trajectory))
    write_csv(out / "stages.csv", pd.DataFrame(stages))
    write_csv(out / "train_curves.csv", pd.DataFrame(curves, columns=CURVE_COLUMNS))
    return out


def stage_seconds(cfg: Config, runs: pd.DataFrame, records: dict) -> pd.DataFrame:
    """The compute time of the stages behind every row of ``runs``: for each (run seed, task), its
    SFT stages, target cache and distillations. A stage shared by several run seeds (the teacher
    of k student seeds and its cache) appears under each, with its own seed in ``stage_seed``:
    :func:`unique_stages` counts it once, whatever parts the table was joined from. ``seconds``: the
    stage records' training, selection and evaluation times, ``eval_seconds`` the evaluation part
    (dev checkpoints, and the SFT's test pass); loading, encoding and a distillation's final test
    pass are not timed."""
    rows = []
    for row in runs.itertuples():
        record = records[(row.model, row.task, row.seed)]
        if is_baseline(row.model):
            parts = [("sft", row.model, record.seed, record.train_s, record.eval_s)]
        else:
            parts = [("cache", "teacher_cache", cfg.teacher_seed(row.seed), record.cache.build_s, 0.0),
                     ("distill", row.model, record.seed, record.train_s + record.select_s,
                      sum(s.eval_s for s in record.stages))]
        rows += [{"stage": stage, "model": model, "task": row.task, "seed": row.seed, "stage_seed": own,
                  "seconds": train + evaluation, "eval_seconds": evaluation}
                 for stage, model, own, train, evaluation in parts]
    frame = pd.DataFrame(rows, columns=["stage", "model", "task", "seed", "stage_seed", "seconds", "eval_seconds"])
    return frame.drop_duplicates(["stage", "model", "task", "seed", "stage_seed"]).reset_index(drop=True)


def unique_stages(frame: pd.DataFrame) -> pd.DataFrame:
    """Each stage once (see :func:`stage_seconds`)."""
    return frame.drop_duplicates(["stage", "model", "task", "stage_seed"]).reset_index(drop=True)


PARTS = {("sft", "teacher_sft"): "teacher SFT", ("cache", "teacher_cache"): "teacher target caches",
         ("sft", "student_sft"): "student SFT"}
DISTILLATION = "distillation (every method)"
RUN_TIME_COLUMNS = ["part", "first_seed_min", "all_seeds_min", "all_seeds_eval_min", "share"]


def run_time(cfg: Config, results_root) -> pd.DataFrame:
    """Where a run's time goes: base LMs, teacher SFT, its target caches, student SFT and the
    distillations, in minutes for the first seed alone and for all seeds (each stage once: a teacher
    shared by several student seeds counts once), with the evaluation part. Empty when the folder
    lacks stage times for some (task, seed) of ``cfg`` or its base LMs were not trained here."""
    out = results_dir(cfg, results_root)
    have = (out / "stage_seconds.csv").is_file() and (out / "base_models.json").is_file()
    base = [r.get("wall_s") for r in read_json(out / "base_models.json").values()] if have else [None]
    stages = load_table(cfg, "stage_seconds", results_root) if have else pd.DataFrame(columns=["task", "seed"])
    if None in base or set(zip(stages.task, stages.seed)) != {(t, s) for t in cfg.tasks for s in cfg.seeds}:
        return pd.DataFrame(columns=RUN_TIME_COLUMNS)
    part = pd.Series([PARTS.get((s, m), DISTILLATION) for s, m in zip(stages.stage, stages.model)])
    rows = [{"part": "base LMs", "first_seed_min": sum(base) / 60, "all_seeds_min": sum(base) / 60,
             "all_seeds_eval_min": 0.0}]
    for name in [*PARTS.values(), DISTILLATION]:
        once, first = unique_stages(group := stages[part == name]), unique_stages(group[group.seed == cfg.seeds[0]])
        rows.append({"part": name, "first_seed_min": first.seconds.sum() / 60, "all_seeds_min": once.seconds.sum() / 60,
                     "all_seeds_eval_min": once.eval_seconds.sum() / 60})
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {"part": "total", **table.drop(columns="part").sum()}  # before the share
    table["share"] = table.all_seeds_min / table.all_seeds_min.iloc[-1]
    return table


def has_results(cfg: Config, results_root: str | Path = "results") -> bool:
    path = results_dir(cfg, results_root) / "runs.csv"
    if not path.is_file():
        return False
    runs = pd.read_csv(path)
    wanted = {(m, t, s) for m in cfg.models for t in cfg.tasks for s in cfg.seeds}
    return wanted <= set(zip(runs["model"], runs["task"], runs["seed"]))


def load_runs(cfg: Config, results_root: str | Path = "results") -> pd.DataFrame:
    runs = pd.read_csv(results_dir(cfg, results_root) / "runs.csv")
    return runs[runs["task"].isin(cfg.tasks) & runs["seed"].isin(cfg.seeds)].reset_index(drop=True)


def load_table(cfg: Config, name: str, results_root: str | Path = "results") -> pd.DataFrame:
    """The rows of this config's tasks and seeds; tables that do not depend on the seed (prompt
    cuts, the train-split reference) have no seed column and are filtered by task only."""
    frame = pd.read_csv(results_dir(cfg, results_root) / f"{name}.csv")
    keep = frame["task"].isin(cfg.tasks)
    if "seed" in frame.columns:
        keep &= frame["seed"].isin(cfg.seeds)
    return frame[keep].reset_index(drop=True)


def load_train_curves(cfg: Config, results_root: str | Path = "results") -> pd.DataFrame | None:
    """The distillation stages' training curves of this config's tasks and seeds; None for
    results written before the curves were exported."""
    if not (results_dir(cfg, results_root) / "train_curves.csv").is_file():
        return None
    return load_table(cfg, "train_curves", results_root)


def load_samples(cfg: Config, task: str, model: str, seed: int, results_root: str | Path = "results") -> pd.DataFrame:
    return pd.read_csv(results_dir(cfg, results_root) / "samples" / task / f"{model}_seed{seed}.csv")


def reference_path(cfg: Config, task: str, results_root: str | Path = "results") -> Path:
    """Per-sample test rows of the train-split reference (``scd.scoring.reference``); one per task, as it
    does not depend on the run seed."""
    return results_dir(cfg, results_root) / "samples" / task / "train_reference.csv"


def load_weights(cfg: Config, task: str, model: str, seed: int, results_root: str | Path = "results") -> pd.DataFrame:
    return pd.read_csv(results_dir(cfg, results_root) / "weights" / task / f"{model}_seed{seed}.csv")
