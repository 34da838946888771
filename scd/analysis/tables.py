"""Table 1 with honest statistics: mean over seeds, 95% bootstrap intervals over test items (each
drawn with all its seeds' rows, so that an item counts once), paired comparisons against the
teacher with their minimum detectable difference, and the paper's reported numbers beside."""
from __future__ import annotations

import ast
import functools
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scd.scoring import metrics
from scd.analysis.sfs_tfs import bootstrap_ci, clustered_test, paired_difference, task_average_ci
from scd.data.files import data_dir
from scd.core.methods import REFERENCE, in_order
from scd.analysis.export import load_samples, reference_path
from scd.core.tasks import TASKS, get_task

if TYPE_CHECKING:
    from scd.core.config import Config


def paper_reported() -> pd.DataFrame:
    return pd.read_csv(files("scd.analysis").joinpath("paper_reported.csv"))


def upstream_credit(rows: pd.DataFrame) -> np.ndarray:
    """Per-sample NER credit by JMED-LLM's own code (``metrics.partial_f1_upstream``), recomputed
    from a per-sample table's gold and parsed prediction (unparsed: the empty list, as upstream)."""
    preds = [[] if pd.isna(p) else ast.literal_eval(p) for p in rows["prediction"]]
    return np.array([metrics.partial_f1_upstream(metrics.gold_entities(g), p) for g, p in zip(rows["gold"], preds)])


def credit_matrix(cfg: Config, task: str, model: str, results_root="results", ner: str = "defined") -> np.ndarray:
    """``[seeds, items]`` per-sample credit, items aligned by id across seeds and models.
    ``ner="upstream"`` scores NER tasks by JMED-LLM's code instead of the definition."""
    frames = [load_samples(cfg, task, model, seed, results_root).sort_values("id") for seed in cfg.seeds]
    return np.stack([_credit(f, task, ner) for f in frames])


def _credit(rows: pd.DataFrame, task: str, ner: str) -> np.ndarray:
    if ner == "upstream" and get_task(task).kind == "ner":
        return upstream_credit(rows)
    return rows["correct"].to_numpy(dtype=float)


def thin_tasks(cfg: Config) -> list[str]:
    """Tasks with fewer than ``cfg.min_train_items`` train items (MRNER-medicine has 14): each of
    their stages is a step or two, so their scores say nothing about a method; they stay in the
    tables, marked, and out of the average."""
    return [t for t in cfg.tasks if cfg.min_train_items and _train_size(t, str(data_dir())) < cfg.min_train_items]


@functools.lru_cache(maxsize=None)
def _train_size(task: str, data_root: str) -> int:  # every table asks; the data folder does not change in a run
    from scd.data.splits import load_task

    return len(load_task(task, data_root)["train"])


def score_table(cfg: Config, models=None, results_root="results", n_boot: int = 1000, ner: str = "defined") -> pd.DataFrame:
    """Long table: model (default: the run's, ``cfg.models``), task (and 'average', over the tasks
    with enough train data), mean, lo, hi, and for every model but the teacher and the reference:
    ``diff_vs_teacher`` with its paired interval (``diff_lo``, ``diff_hi``), ``p_vs_teacher``,
    ``mde_vs_teacher`` (the smallest difference detectable with 80% power at two-sided 5%,
    ``scd.analysis.power``) and ``distinguishable``. Every interval resamples test items as
    clusters of their seeds' rows (``sfs_tfs.cluster_bootstrap``)."""
    thin, models = thin_tasks(cfg), cfg.models if models is None else models
    credit = {m: {t: credit_matrix(cfg, t, m, results_root, ner) for t in cfg.tasks} for m in models}
    teacher = credit.get("teacher_sft") or {t: credit_matrix(cfg, t, "teacher_sft", results_root, ner) for t in cfg.tasks}
    if all(reference_path(cfg, t, results_root).is_file() for t in cfg.tasks):  # one row set, no seeds: [1, items]
        credit[REFERENCE] = {t: _credit(pd.read_csv(reference_path(cfg, t, results_root)).sort_values("id"), t, ner)[None]
                             for t in cfg.tasks}
    rows = []
    for model, per_task in credit.items():
        for task, m in per_task.items():
            mean, lo, hi = bootstrap_ci(m, n_boot)
            rows.append({"model": model, "task": task, "mean": mean, "lo": lo, "hi": hi}
                        | ({} if model in ("teacher_sft", REFERENCE) else _versus_teacher(m, teacher[task], n_boot)))
        kept = {t: m for t, m in per_task.items() if t not in thin}
        mean, lo, hi, _ = task_average_ci(kept, n_boot) if kept else (np.nan,) * 4
        rows.append({"model": model, "task": "average", "mean": mean, "lo": lo, "hi": hi})
    table = pd.DataFrame(rows).assign(too_little_train=lambda f: f.task.isin(thin))
    return _average_vs_teacher(table, credit, n_boot, thin) if "teacher_sft" in credit else table


def _versus_teacher(m: np.ndarray, teacher: np.ndarray, n_boot: int) -> dict:
    d = paired_difference(m, teacher, n_boot)
    return {"diff_vs_teacher": d["diff"], "diff_lo": d["lo"], "diff_hi": d["hi"], "p_vs_teacher": d["p"],
            "mde_vs_teacher": d["mde"], "distinguishable": d["distinguishable"]}


def _average_vs_teacher(table: pd.DataFrame, credit: dict, n_boot: int, thin: list[str]) -> pd.DataFrame:
    teacher = credit["teacher_sft"]
    for model, per_task in credit.items():
        if model in ("teacher_sft", REFERENCE):
            continue
        diffs = [m - teacher[t] for t, m in per_task.items() if t not in thin]
        if not diffs:
            continue
        d = clustered_test(diffs, "strata", n_boot, seed=1)
        mask = (table.model == model) & (table.task == "average")
        table.loc[mask, ["diff_vs_teacher", "diff_lo", "diff_hi", "p_vs_teacher", "mde_vs_teacher"]] = [
            d["diff"], d["lo"], d["hi"], d["p"], d["mde"]]
        table.loc[mask, "distinguishable"] = d["distinguishable"]
    return table


def table1(scores: pd.DataFrame) -> pd.DataFrame:
    """Wide Table 1: 'mean [lo, hi]' per task and the average; '≈' marks a difference from the
    teacher that a 95% paired interval cannot tell from noise; paper numbers where reported."""
    def cell(r) -> str:
        mark = "" if r.model in ("teacher_sft", REFERENCE) or bool(r.distinguishable) else " ≈"
        return f"{r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]{mark}"

    cells = [cell(r) for r in scores.itertuples()]
    wide = scores.assign(cell=cells).pivot(index="model", columns="task", values="cell")
    cols = [c for c in scores["task"].unique() if c != "average"] + ["average"]
    wide = wide.loc[in_order(wide.index), cols]
    thin = sorted(scores.loc[scores.too_little_train, "task"].unique()) if "too_little_train" in scores else []
    wide = wide.rename(columns={t: f"{t} (too little train data)" for t in thin})
    if set(scores["task"]) - {"average"} <= set(TASKS):  # the paper's numbers are about its benchmark only
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
