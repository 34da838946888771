"""Can this run test the paper at all? The targets a run must meet before its verdicts mean anything.

A claim such as "SCD+AW beats TD" is only about distillation when every arm has learnt the task:
an arm whose gold loss is no better than a uniform guess over the options, or that gives one label
to every test item, tells which label it collapsed onto, not how it was trained. So the targets
are: every LM arm below the uniform guess and never collapsed; the signal checks (a teacher above
chance and near the train-split n-gram reference, a student SFT clearly below it); the two
differences the paper turns on (TD − student SFT, SCD+AW − TD), reported with their intervals and
the smallest difference the run can detect, whatever their sign; and the run's wall time. Each
target is one row: value, interval where it has one, threshold, met (empty: reported, not judged).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from scd.analysis.export import load_samples, results_dir, run_time
from scd.analysis.sfs_tfs import clustered_test
from scd.core.io import read_json
from scd.core.tasks import get_task

if TYPE_CHECKING:
    from scd.core.config import Config

LOSS_TASKS = ("crade", "smdis", "rrtnm")  # choice tasks with a gold loss worth comparing to a guess
COLLAPSE_TASKS = ("crade", "smdis")  # balanced test labels: one label for all is plainly no learning
DIFFERENCES = (("td", "student_sft"), ("scd_aw", "td"))
MINUTES_ONE_SEED, MINUTES_PER_SEED = 45.0, 50.0  # one seed alone; several seeds (three: 2.5 hours)
COLUMNS = ["target", "model", "task", "value", "lo", "hi", "mde", "threshold", "met"]


def uniform_guess_loss(task: str) -> float:
    """Gold loss (mean NLL per answer token) of a model sure of the end of the answer and uniform over
    the options: the answer is one letter and the end-of-sequence token, so ln(options) / 2."""
    return math.log(get_task(task).n_options) / 2


def loss_rows(cfg: Config, runs: pd.DataFrame) -> list[dict]:
    rows = []
    for task in (t for t in LOSS_TASKS if t in cfg.tasks):
        guess = uniform_guess_loss(task)
        for model in cfg.models:
            loss = float(runs[(runs.task == task) & (runs.model == model)].gold_loss.mean())
            rows.append({"target": "mean test gold loss below the uniform guess", "model": model, "task": task,
                         "value": loss, "threshold": guess, "met": bool(loss < guess)})
    return rows


def collapse_rows(cfg: Config, results_root) -> list[dict]:
    rows = []
    for task in (t for t in COLLAPSE_TASKS if t in cfg.tasks):
        for model in cfg.models:
            labels = [load_samples(cfg, task, model, s, results_root).prediction.dropna().nunique() for s in cfg.seeds]
            rows.append({"target": "labels predicted, fewest over seeds (1 = one label for every item)",
                         "model": model, "task": task, "value": float(min(labels)), "threshold": 2.0,
                         "met": bool(min(labels) >= 2)})
    return rows


def difference_rows(diffs: dict[tuple[str, str], list], n_boot: int = 1000) -> list[dict]:
    """``diffs[(a, b)]``: per task, the ``[seeds, items]`` credit of a minus b; the task average with
    items as clusters over seeds (as Table 1's). Reported, not judged."""
    rows = []
    for (a, b), per_task in diffs.items():
        d = clustered_test(per_task, "strata", n_boot, seed=1)
        rows.append({"target": f"{a} − {b}, task average (reported whatever its sign)", "model": f"{a} − {b}",
                     "task": "average", "value": d["diff"], "lo": d["lo"], "hi": d["hi"], "mde": d["mde"]})
    return rows


def timing_rows(cfg: Config, results_root, spent: pd.DataFrame | None = None) -> list[dict]:
    """The wall time of the last run, judged only when it computed every stage itself
    (``timing.json``: a run that loaded stages from ``runs/`` says nothing about the time); and the
    stage times summed (:func:`scd.analysis.export.run_time`) for the first seed and for all. A sum
    leaves out loading, tables and notebooks, so it is a lower bound on one run's time: above the
    limit it is a miss, below it says nothing (``met`` empty)."""
    out = results_dir(cfg, results_root)
    record = read_json(out / "timing.json") if (out / "timing.json").is_file() else {}
    whole = record.get("stages") and record.get("stages_computed") == record["stages"]
    minutes = record["wall_s"] / 60 if whole else float("nan")
    limit = MINUTES_ONE_SEED if len(cfg.seeds) == 1 else MINUTES_PER_SEED * len(cfg.seeds)
    rows = [{"target": f"wall time of one run computing every stage, {len(cfg.seeds)} seed(s), base LMs "
                       "included (minutes; empty: not measured as one run)", "model": "all", "task": "all",
             "value": minutes, "threshold": limit, "met": bool(minutes <= limit) if whole else None}]
    spent = run_time(cfg, results_root) if spent is None else spent  # ``spent``: that table, when already made
    if not len(spent):
        return rows
    total = spent.set_index("part").loc["total"]
    spans = {(cfg.seeds[0],): (total.first_seed_min, MINUTES_ONE_SEED)}
    if len(cfg.seeds) > 1:
        spans[cfg.seeds] = (total.all_seeds_min, MINUTES_PER_SEED * len(cfg.seeds))
    for seeds, (minutes, limit) in spans.items():
        rows.append({"target": f"stage times summed, seed(s) {', '.join(map(str, seeds))}, base LMs included "
                               "(minutes; a lower bound on one run: judged only when above the limit)",
                     "model": "all", "task": "all", "value": minutes, "threshold": limit,
                     "met": False if minutes > limit else None})
    return rows


def target_table(cfg: Config, runs: pd.DataFrame, signal: pd.DataFrame, diffs: dict, results_root="results",
                 spent: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every target of the run, from its runs table, its signal checks (``scd.analysis.signal``)
    and the credit differences of :data:`DIFFERENCES` (``scd.analysis.products.targets`` gathers them)."""
    checks = signal.rename(columns={"check": "target"}).assign(model="teacher_sft")
    rows = loss_rows(cfg, runs) + collapse_rows(cfg, results_root)
    return pd.DataFrame(rows + checks.to_dict("records") + difference_rows(diffs) + timing_rows(cfg, results_root, spent),
                        columns=COLUMNS)


def summary(table: pd.DataFrame) -> str:
    judged = table[table.met.notna()]
    missed = judged[~judged.met.astype(bool)]
    if missed.empty:
        return f"all {len(judged)} judged targets met"
    return (f"{len(judged) - len(missed)} of {len(judged)} judged targets met; missed: "
            + "; ".join(sorted({f"{r.target} ({r.task})" for r in missed.itertuples()})))
