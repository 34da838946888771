"""Does a run's experiment have a signal? The signal checks, run on its test results.

A distillation method can only be judged when the teacher has learnt something the student has
not: the teacher must beat what a model gets without reading the input (chance) on the tasks the
train split can teach, come near what a bag of n-grams learns from the same train items, and
stand clearly above the student SFT. Each check is one row: the measured value, its 95%
interval where it has one, the threshold and whether it is met. Computed from Table 1's scores
(``tables.score_table``), so the verdict and the table cannot disagree.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from scd.core.methods import REFERENCE
from scd.analysis.export import load_samples
from scd.core.tasks import get_task

if TYPE_CHECKING:
    from scd.core.config import Config

SIGNAL_TASKS = ("crade", "smdis", "rrtnm", "nrner")  # learnable from the train split (docs/measurements.md)
MIN_ABOVE_CHANCE = 3  # of SIGNAL_TASKS
REFERENCE_TASKS = ("crade", "smdis")  # where the n-gram reference is strong enough to aim at
MIN_REFERENCE_RATIO = 0.9
MIN_GAP = 0.05  # teacher − student SFT on the task average (the paper's gap: 0.118)


def chance_level(gold: pd.Series, kind: str) -> float:
    """The best test score of a constant answer: the majority label's share for choice and yes/no
    tasks (what a model collapsed to one label gets), 0 for NER (the empty list)."""
    return 0.0 if kind == "ner" else float(gold.astype(str).value_counts(normalize=True).iloc[0])


def check_table(cfg: Config, scores: pd.DataFrame, results_root="results") -> pd.DataFrame:
    """One row per signal check that the run's tasks allow; empty when it has none."""
    at = scores.set_index(["model", "task"])
    rows, above = [], []
    for task in (t for t in SIGNAL_TASKS if t in cfg.tasks):
        teacher = at.loc[("teacher_sft", task)]
        gold = load_samples(cfg, task, "teacher_sft", cfg.seeds[0], results_root)["gold"]
        chance = chance_level(gold, get_task(task).kind)
        above.append(bool(teacher.lo > chance))
        rows.append({"check": "teacher above chance (95% interval)", "task": task, "value": teacher["mean"],
                     "lo": teacher.lo, "hi": teacher.hi, "threshold": chance, "met": above[-1]})
    if len(above) == len(SIGNAL_TASKS):  # the count check is about all four
        rows.append({"check": f"teacher above chance on ≥ {MIN_ABOVE_CHANCE} of {len(SIGNAL_TASKS)} tasks",
                     "task": ",".join(SIGNAL_TASKS), "value": float(sum(above)),
                     "threshold": float(MIN_ABOVE_CHANCE), "met": sum(above) >= MIN_ABOVE_CHANCE})
    for task in (t for t in REFERENCE_TASKS if t in cfg.tasks and (REFERENCE, t) in at.index):
        ratio = at.loc[("teacher_sft", task), "mean"] / at.loc[(REFERENCE, task), "mean"]
        rows.append({"check": "teacher / train-split n-gram reference", "task": task, "value": ratio,
                     "threshold": MIN_REFERENCE_RATIO, "met": bool(ratio >= MIN_REFERENCE_RATIO)})
    if ("student_sft", "average") in at.index:
        student = at.loc[("student_sft", "average")]  # diff = student − teacher, paired over items and seeds
        gap, lo, hi = -student.diff_vs_teacher, -student.diff_hi, -student.diff_lo
        rows.append({"check": "teacher − student SFT, task average (paired 95% interval)", "task": "average",
                     "value": gap, "lo": lo, "hi": hi, "threshold": MIN_GAP, "met": bool(gap >= MIN_GAP and lo > 0)})
    return pd.DataFrame(rows, columns=["check", "task", "value", "lo", "hi", "threshold", "met"])


def dev_gap(trajectory: pd.DataFrame, leave_out=()) -> pd.DataFrame:
    """Teacher against student SFT on **dev**, each at its best checkpoint, by the score
    checkpoints are selected by (chance-corrected: a dev set that keeps the pool's label skew
    cannot reward the majority label), per task and averaged without ``leave_out`` (as Table 1's
    average): whether the pair keeps a gap once both have trained their budget, judged where
    choosing is allowed. Mean over seeds."""
    best = trajectory[trajectory["best"].astype(bool)]
    wide = best.pivot_table(index="task", columns="model", values="dev_selection", aggfunc="mean")
    wide = wide.reindex(index=list(dict.fromkeys(best["task"])), columns=["teacher_sft", "student_sft"])
    wide.loc["average"] = wide.drop(index=[t for t in leave_out if t in wide.index]).mean()
    wide["gap"] = wide["teacher_sft"] - wide["student_sft"]
    wide["keeps_gap"] = wide["gap"] >= MIN_GAP
    return wide.reset_index().rename_axis(columns=None)
