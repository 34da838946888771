"""SCD's checkpoint choice term by term: which of its two KL terms decides each stage's pick.

SCD scores every teacher checkpoint c by ``KL(p_best‖p_c) + KL(p_student‖p_c)`` on its probe
(``scd.kd.policies``) and follows the lowest. A stage record keeps the score (``candidate_scores``),
the first term (``kl_from_best``) and the second (``kl_student``). The two terms need not share a
scale: the best term compares the teacher's checkpoints with each other, the student term a
student that starts far from every checkpoint, so one term can settle every choice.

``stages.csv`` written before ``kl_student`` was kept lacks it; it is derived here where that is
exact from the config's ``selection_terms``: score − KL(best‖c) under ``both`` (the paper's
criterion), the score under ``student``; under ``best`` the student term was never computed (NaN).
"""
from __future__ import annotations

import json
import math

import pandas as pd

from scd.core.methods import in_order, is_method, parse_method

DECIDERS = ("student term", "best term", "both agree", "neither alone")
UNKNOWN = "unknown"  # a term the run did not compute (selection_terms="best")
COLUMNS = ["model", "task", "seed", "stage", "candidate", "checkpoint", "kl_best", "kl_student", "score", "chosen",
           "chosen_index", "n_candidates", "decided_by", "kl_best_range", "kl_student_range", "score_range"]
STAGE_COLUMNS = ["model", "task", "seed", "stage", "chosen_index", "n_candidates", "decided_by", "kl_best_range",
                 "kl_student_range", "score_range"]


def _floats(value) -> list[float] | None:
    """A JSON list of stages.csv (or a list); None for an empty cell, ``null`` or NaN."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return [float("nan") if v is None else float(v) for v in value]


def student_term(score: list[float], kl_best: list[float], selection_terms: str) -> list[float]:
    """KL(p_student‖p_c) per candidate recovered from the score, where the criterion makes it exact."""
    if selection_terms == "both":
        return [s - b for s, b in zip(score, kl_best, strict=True)]
    if selection_terms == "student":
        return list(score)
    return [float("nan")] * len(score)


def _argmin(values: list[float]) -> int | None:
    """The lowest value's index, ties to the earlier candidate as SCD's rule; None if a value is unknown."""
    if any(math.isnan(v) for v in values):
        return None
    return min(range(len(values)), key=lambda c: (values[c], c))


def decided_by(kl_best: list[float], kl_student: list[float], score: list[float]) -> str:
    """Which term picks the score's argmin: the one whose own argmin it is (``student term``,
    ``best term``), both (``both agree``), neither (``neither alone``: only the sum picks it), or
    ``unknown`` where a term was not computed."""
    pick, best, student = _argmin(score), _argmin(kl_best), _argmin(kl_student)
    if pick is None or best is None or student is None:
        return UNKNOWN
    return {(True, True): "both agree", (True, False): "student term", (False, True): "best term",
            (False, False): "neither alone"}[(student == pick, best == pick)]


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if not any(math.isnan(v) for v in values) else float("nan")


def candidates(stages: pd.DataFrame, selection_terms: str = "both") -> pd.DataFrame:
    """One row per (method with a probe, task, seed, stage, candidate) of a ``stages.csv`` frame:
    both KL terms, the score, whether the stage chose it, and per stage (repeated on its rows)
    which term decided (``decided_by``) and each term's range over the candidates (max − min).
    ``selection_terms``: the run's config value, to derive ``kl_student`` where the frame lacks it."""
    rows = []
    for r in stages.itertuples(index=False):
        if not (is_method(r.model) and parse_method(r.model).policy.needs_probe):
            continue
        score = _floats(r.candidate_scores)
        if score is None:
            continue
        kl_best = _floats(r.kl_from_best)
        kl_student = _floats(getattr(r, "kl_student", None))
        if kl_student is None:
            kl_student = student_term(score, kl_best, selection_terms)
        stage = {"chosen_index": int(r.checkpoint_index), "n_candidates": len(score),
                 "decided_by": decided_by(kl_best, kl_student, score), "kl_best_range": _spread(kl_best),
                 "kl_student_range": _spread(kl_student), "score_range": _spread(score)}
        for c, (b, s, sc) in enumerate(zip(kl_best, kl_student, score, strict=True)):
            rows.append({"model": r.model, "task": r.task, "seed": int(r.seed), "stage": int(r.stage), "candidate": c,
                         "checkpoint": f"ckpt{c}", "kl_best": b, "kl_student": s, "score": sc,
                         "chosen": c == int(r.checkpoint_index)} | stage)
    return pd.DataFrame(rows, columns=COLUMNS)


def stage_view(terms: pd.DataFrame) -> pd.DataFrame:
    """``candidates``' per-stage columns, one row per stage."""
    return terms.drop_duplicates(["model", "task", "seed", "stage"])[STAGE_COLUMNS].reset_index(drop=True)


def summary(terms: pd.DataFrame) -> pd.DataFrame:
    """Per (method, task) of ``candidates``, then per method over its tasks (task "all tasks"):
    stages, how many each term decided (``DECIDERS``; ``unknown`` only where some were), how often
    the earliest and the last checkpoint were chosen, and the median over stages of each term's
    range over the candidates (nats); methods in table order, tasks as they come."""
    view = stage_view(terms)
    counts = [d.replace(" ", "_") for d in DECIDERS] + [UNKNOWN] * bool((view.decided_by == UNKNOWN).any())
    cols = ["model", "task", "stages", *counts, "earliest_chosen", "last_chosen", "kl_best_range", "kl_student_range"]
    rows = []
    for model in in_order(view.model):
        mine = view[view.model == model]
        for task, part in [*mine.groupby("task", sort=False), ("all tasks", mine)]:
            decided = part.decided_by.str.replace(" ", "_").value_counts()
            rows.append({"model": model, "task": task, "stages": len(part),
                         **{d: int(decided.get(d, 0)) for d in counts},
                         "earliest_chosen": int((part.chosen_index == 0).sum()),
                         "last_chosen": int((part.chosen_index == part.n_candidates - 1).sum()),
                         "kl_best_range": part.kl_best_range.median(),
                         "kl_student_range": part.kl_student_range.median()})
    return pd.DataFrame(rows, columns=cols)


def headline(terms: pd.DataFrame, focus: str = "crade") -> tuple[pd.Series, pd.Series]:
    """``summary``'s rows of the headline SCD method (scd_aw where it ran, else the first): over all
    its tasks, and on ``focus`` (the ablations' task; else its first task)."""
    table = summary(terms)
    mine = table[table.model == ("scd_aw" if "scd_aw" in set(table.model) else table.model.iloc[0])]
    task = focus if focus in set(mine.task) else mine.task.iloc[0]
    return mine[mine.task == "all tasks"].iloc[0], mine[mine.task == task].iloc[0]
