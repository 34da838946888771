"""Table 1 with honest statistics: mean over seeds, 95% bootstrap intervals over test items
and seeds, paired comparisons against the teacher, and the paper's reported numbers beside."""
from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd

from scd.analysis import bootstrap_ci, paired_difference, task_average_ci
from scd.config import Config
from scd.results import MODELS, load_samples


def paper_reported() -> pd.DataFrame:
    return pd.read_csv(files("scd").joinpath("paper_reported.csv"))


def credit_matrix(cfg: Config, task: str, model: str, root="results") -> np.ndarray:
    """``[seeds, items]`` per-sample credit, items aligned by id across seeds and models."""
    frames = [load_samples(cfg, task, model, seed, root).sort_values("id") for seed in cfg.seeds]
    return np.stack([f["correct"].to_numpy(dtype=float) for f in frames])


def score_table(cfg: Config, models=MODELS, root="results", n_boot: int = 1000) -> pd.DataFrame:
    """Long table: model, task (and 'average'), mean, lo, hi, diff vs teacher, its interval, p."""
    rows = []
    for model in models:
        per_task = {}
        for task in cfg.tasks:
            m = credit_matrix(cfg, task, model, root)
            per_task[task] = m
            mean, lo, hi = bootstrap_ci(m, n_boot)
            rows.append({"model": model, "task": task, "mean": mean, "lo": lo, "hi": hi}
                        | _versus_teacher(cfg, task, m, model, root, n_boot))
        mean, lo, hi, _ = task_average_ci(per_task, n_boot)
        rows.append({"model": model, "task": "average", "mean": mean, "lo": lo, "hi": hi})
    table = pd.DataFrame(rows)
    teacher_avg = table[(table.model == "teacher_sft") & (table.task == "average")]
    return _average_vs_teacher(table, cfg, root, n_boot) if len(teacher_avg) else table


def _versus_teacher(cfg, task, m, model, root, n_boot) -> dict:
    if model == "teacher_sft":
        return {}
    d = paired_difference(m, credit_matrix(cfg, task, "teacher_sft", root), n_boot)
    return {"diff_vs_teacher": d["diff"], "diff_lo": d["lo"], "diff_hi": d["hi"], "p_vs_teacher": d["p"],
            "distinguishable": d["distinguishable"]}


def _average_vs_teacher(table, cfg, root, n_boot) -> pd.DataFrame:
    teacher = {t: credit_matrix(cfg, t, "teacher_sft", root) for t in cfg.tasks}
    for model in table["model"].unique():
        if model == "teacher_sft":
            continue
        diffs = {t: credit_matrix(cfg, t, model, root) - teacher[t] for t in cfg.tasks}
        diff, lo, hi, _ = task_average_ci(diffs, n_boot, seed=1)
        mask = (table.model == model) & (table.task == "average")
        table.loc[mask, ["diff_vs_teacher", "diff_lo", "diff_hi"]] = [diff, lo, hi]
        table.loc[mask, "distinguishable"] = not (lo <= 0 <= hi)
    return table


def table1(scores: pd.DataFrame) -> pd.DataFrame:
    """Wide Table 1: 'mean [lo, hi]' per task and the average; '≈' marks a difference from the
    teacher that a 95% paired interval cannot tell from noise; paper numbers where reported."""
    def cell(r) -> str:
        mark = "" if r.model == "teacher_sft" or bool(r.distinguishable) else " ≈"
        return f"{r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]{mark}"

    cells = [cell(r) for r in scores.itertuples()]
    wide = scores.assign(cell=cells).pivot(index="model", columns="task", values="cell")
    cols = [c for c in scores["task"].unique() if c != "average"] + ["average"]
    wide = wide.loc[[m for m in MODELS if m in wide.index], cols]
    paper = paper_reported()
    avg = paper[paper.task == "average"].set_index("model")["value"]
    wide["paper_average"] = [f"{avg[m]:.3f}" if m in avg else "" for m in wide.index]
    return wide.reset_index()


SECONDARY = ("kappa", "exact_f1", "macro_f1")


def secondary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Kappa (choice), exact-match F1 (NER), macro-F1 (PubMedQA): mean over seeds, model × task."""
    present = [c for c in SECONDARY if c in runs]
    value = runs[present].bfill(axis=1).iloc[:, 0]
    return runs.assign(secondary=value).pivot_table(index="model", columns="task", values="secondary")
