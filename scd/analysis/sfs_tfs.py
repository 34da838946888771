"""SFS/TFS analysis and the statistics the paper does not give.

With per-sample risks ℓ_T, ℓ_S of the SFT'd teacher and student, SFS = {ℓ_S < ℓ_T} and
TFS = the rest (ties included), and exactly
    R_T − R_S = P(SFS)·E[ℓ_T − ℓ_S | SFS] − P(TFS)·E[ℓ_S − ℓ_T | TFS].
Risk is either the gold-sequence loss or the 0/1 error (1 − per-sample credit).

Every interval here resamples test items as clusters (``cluster_bootstrap``): one draw of an item
brings all its replicate rows (its seeds), so an item counts once however many runs scored it;
the replicate runs are resampled too, so the training variance is in the interval. Within a
stratified design (Table 1's task average, the claims' tasks) each task is resampled separately.
The minimum detectable difference comes from ``scd.analysis.power``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from scd.analysis import power

RISKS = ("loss", "error")


def risk_of(rows: pd.DataFrame, risk: str) -> pd.Series:
    if risk not in RISKS:
        raise ValueError(f"unknown risk {risk!r}; expected one of {RISKS}")
    values = rows["gold_loss"] if risk == "loss" else 1.0 - rows["correct"]
    return pd.Series(values.to_numpy(), index=rows["id"])


def split_subdomains(teacher: pd.DataFrame, student: pd.DataFrame, risk: str = "loss") -> pd.DataFrame:
    """One row per sample: its teacher and student risk and whether it is in the SFS or TFS."""
    lt, ls = risk_of(teacher, risk), risk_of(student, risk)
    if set(lt.index) != set(ls.index):
        raise ValueError("teacher and student results cover different samples; compare the same split")
    frame = pd.DataFrame({"id": lt.index, "tag": teacher.set_index("id").loc[lt.index, "tag"].to_numpy(),
                          "l_T": lt.to_numpy(), "l_S": ls.loc[lt.index].to_numpy()})
    frame["domain"] = np.where(frame["l_S"] < frame["l_T"], "SFS", "TFS")
    return frame


def decomposition(split: pd.DataFrame) -> dict:
    """Both sides of the identity; ``residual`` is their difference (zero up to rounding)."""
    n = len(split)
    sfs, tfs = split[split["domain"] == "SFS"], split[split["domain"] == "TFS"]
    p_sfs, p_tfs = len(sfs) / n, len(tfs) / n
    adv = float((sfs["l_T"] - sfs["l_S"]).mean()) if len(sfs) else 0.0
    deficit = float((tfs["l_S"] - tfs["l_T"]).mean()) if len(tfs) else 0.0
    lhs = float(split["l_T"].mean() - split["l_S"].mean())
    rhs = p_sfs * adv - p_tfs * deficit
    return {"n": n, "R_T": float(split["l_T"].mean()), "R_S": float(split["l_S"].mean()), "gap": lhs,
            "P_SFS": p_sfs, "adv_SFS": adv, "P_TFS": p_tfs, "deficit_TFS": deficit,
            "weighted_adv": p_sfs * adv, "weighted_deficit": p_tfs * deficit, "rhs": rhs, "residual": lhs - rhs}


def subdomain_scores(split: pd.DataFrame, models: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean per-sample credit of each model on the SFS and on the TFS of one split."""
    domain = split.set_index("id")["domain"]
    rows = []
    for name, frame in models.items():
        credit = frame.set_index("id")["correct"]
        for part in ("SFS", "TFS"):
            ids = domain.index[domain == part]
            rows.append({"model": name, "domain": part, "n": len(ids),
                         "score": float(credit.loc[ids].mean()) if len(ids) else float("nan")})
    return pd.DataFrame(rows)


def subtask_view(teacher: pd.DataFrame, students: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per sub-task tag: the teacher's score, the best distilled student's, and who wins."""
    t = teacher.groupby("tag")["correct"].mean()
    s = pd.DataFrame({name: f.groupby("tag")["correct"].mean() for name, f in students.items()})
    out = pd.DataFrame({"tag": t.index, "n": teacher.groupby("tag").size().to_numpy(), "teacher": t.to_numpy(),
                        "best_student": s.max(axis=1).loc[t.index].to_numpy(),
                        "best_method": s.idxmax(axis=1).loc[t.index].to_numpy()})
    out["student_wins"] = out["best_student"] > out["teacher"]
    return out


def cluster_bootstrap(strata, weighting: str = "rows", n_boot: int = 2000, seed: int = 0,
                      replicates: bool = True) -> np.ndarray:
    """Bootstrap replicates of ``power.estimate(strata, weighting)``. Within every stratum (a
    ``[replicates, items]`` matrix, NaN = no row; a task) the items are drawn with replacement as
    clusters, each draw bringing the rows of all drawn replicates, so copies of one item count
    once; ``replicates=True`` also draws the stratum's replicate rows (its independently trained
    runs: seeds) with replacement, so the interval holds the training variance too."""
    rng, rng_runs = np.random.default_rng(seed), np.random.default_rng([seed, 1])  # items drawn alike for any run count
    sums, rows, means = np.zeros(n_boot), np.zeros(n_boot), np.zeros(n_boot)
    for m in strata:
        m = np.atleast_2d(np.asarray(m, dtype=float))
        m = m[:, ~np.isnan(m).all(axis=0)]  # a column without rows is no item
        n_rep, n_items = m.shape
        present, filled = ~np.isnan(m), np.nan_to_num(m)
        for b in range(n_boot):
            reps = rng_runs.integers(0, n_rep, n_rep) if replicates else np.arange(n_rep)
            items = rng.integers(0, n_items, n_items)
            k = present[np.ix_(reps, items)].sum()
            s_b = filled[np.ix_(reps, items)].sum()
            sums[b], rows[b] = sums[b] + s_b, rows[b] + k
            means[b] += s_b / k if k else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw with no row at all gives NaN, left out
        return means / len(strata) if weighting == "strata" else sums / rows


def clustered_test(strata, weighting: str = "rows", n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Estimate, percentile interval and two-sided bootstrap p ("the mean is zero", from the
    replicates centred on the estimate) of a mean over test items as clusters and over the
    replicate runs (``cluster_bootstrap``), and its minimum detectable difference: ``power.mde``
    of the bootstrap's standard error, which holds both the item and the run-to-run variance."""
    est = power.estimate(strata, weighting)
    boot = cluster_bootstrap(strata, weighting, n_boot, seed)
    alpha = (1 - level) / 2
    lo, hi = float(np.nanquantile(boot, alpha)), float(np.nanquantile(boot, 1 - alpha))
    p = float((np.abs(boot - est) >= abs(est)).mean())
    return {"diff": est, "lo": lo, "hi": hi, "p": p, "mde": power.mde(float(np.nanstd(boot, ddof=1))),
            "distinguishable": not (lo <= 0.0 <= hi)}


def bootstrap_ci(scores: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile interval of a ``[replicates, items]`` score matrix (NaN = no row),
    resampling items as clusters: one draw of an item brings all its replicate rows."""
    test = clustered_test([scores], "rows", n_boot, level, seed)
    return test["diff"], test["lo"], test["hi"]


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Paired clustered bootstrap of mean(a − b) over the same ``[replicates, items]`` cells:
    diff, interval, two-sided p, minimum detectable difference (``mde``), distinguishable."""
    return clustered_test([np.asarray(a, dtype=float) - np.asarray(b, dtype=float)], "rows", n_boot, level, seed)


def task_average_ci(per_task: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float, float]:
    """Mean over tasks of ``[replicates, items]`` matrices (each task weighs the same, as in Table 1);
    each bootstrap replicate resamples every task's items as clusters. Returns mean, 95% interval and
    a two-sided bootstrap p for "the mean is zero" (meaningful for difference matrices)."""
    test = clustered_test(list(per_task.values()), "strata", n_boot, seed=seed)
    return test["diff"], test["lo"], test["hi"], test["p"]


# ------------------------------------------------------------------ the paper's claims, tested
CLAIMS = (  # (claim, model a, model b, subset): is mean credit of a − b above zero on the subset?
    ("the SCD+AW student beats the teacher", "scd_aw", "teacher_sft", "all"),
    ("SCD narrows the TFS deficit (SCD vs. standard KD)", "scd", "td", "TFS"),
    ("SCD narrows the TFS deficit (SCD vs. CD order)", "scd", "cd", "TFS"),
    ("AW keeps the SFS advantage (SCD+AW vs. SCD)", "scd_aw", "scd", "SFS"),
    ("AW keeps the SFS advantage (TD+AW vs. TD)", "td_aw", "td", "SFS"),
)
# Inside the SFS/TFS only distilled students are compared with each other: the subsets are
# defined by the SFT teacher's and student's own errors, so either of them compared there is
# biased by construction (the teacher scores ~0 on the SFS of the 0/1 split).


CLAIM_COLUMNS = ["claim", "a", "b", "subset", "n", "n_rows", "n_ties", "score_a", "score_b", "diff", "lo", "hi", "p",
                 "mde", "verdict", "tie_tasks", "n_without_tie_tasks", "diff_without_tie_tasks", "lo_without_tie_tasks",
                 "hi_without_tie_tasks", "mde_without_tie_tasks", "verdict_without_tie_tasks"]


def subset_credit(samples: dict, splits: dict, models, subset: str) -> dict[str, dict[str, np.ndarray]]:
    """Per task, each model's credit as a ``[replicates, items]`` matrix over the test items that are
    in ``subset`` ("all", "SFS", "TFS") in at least one replicate; NaN where an item is outside the
    subset in that replicate. ``samples`` and ``splits`` are keyed ``(task, ...)``: every key of a
    task (a seed, or a teacher seed and a student seed) is one replicate row of each item."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for task in dict.fromkeys(key[0] for key in samples):
        keys = [key for key in samples if key[0] == task]
        member = []
        for key in keys:
            if subset == "all":
                member.append(set(samples[key][models[0]]["id"]))
            else:
                domain = splits[key].set_index("id")["domain"]
                member.append(set(domain.index[domain == subset]))
        ids = sorted(set().union(*member))
        inside = np.array([[i in m for i in ids] for m in member]).reshape(len(keys), len(ids))
        out[task] = {model: np.where(inside, np.stack([samples[key][model].set_index("id")["correct"].reindex(ids)
                                                       .to_numpy(float) for key in keys]), np.nan) for model in models}
    return out


def _ties(credit: dict[str, np.ndarray]) -> np.ndarray:
    """Per item: whether every model gives it the same credit on every replicate row it has."""
    first = next(iter(credit.values()))
    same = np.ones(first.shape, dtype=bool)
    for m in credit.values():
        same &= np.isnan(m) | (np.abs(m - first) <= 1e-12)
    return same.all(axis=0)


def tie_table(samples: dict, splits: dict) -> pd.DataFrame:
    """Per subset (of the claims the models allow) and task, how many of its test items are ties:
    every model some claim compares on that subset gives the item the same credit on every
    replicate. ``all_tie``: every item of the task is one (the task cannot tell those models
    apart). A last row per subset, task "total", sums the tasks."""
    present, rows = set(next(iter(samples.values()))), []
    for subset in dict.fromkeys(c[3] for c in CLAIMS):
        models = list(dict.fromkeys(m for c in CLAIMS if c[3] == subset and {c[1], c[2]} <= present for m in c[1:3]))
        if not models:
            continue
        part = []
        for task, credit in subset_credit(samples, splits, models, subset).items():
            ties, first = _ties(credit), credit[models[0]]
            part.append({"subset": subset, "task": task, "models": " ".join(models), "items": len(ties),
                         "rows": int((~np.isnan(first)).sum()), "tie_items": int(ties.sum())})
        total = pd.DataFrame(part)[["items", "rows", "tie_items"]].sum()
        rows += part + [{"subset": subset, "task": "total", "models": " ".join(models)} | total.to_dict()]
    table = pd.DataFrame(rows, columns=["subset", "task", "models", "items", "rows", "tie_items"])
    return table.assign(tie_share=table.tie_items / table["items"].where(table["items"] > 0),
                        all_tie=(table.tie_items == table["items"]) & (table["items"] > 0) & (table.task != "total"))


def claim_table(samples: dict, splits: dict, n_boot: int = 2000) -> pd.DataFrame:
    """Paired clustered bootstrap of each claim's score difference, stated twice: on all tasks, and
    without the tasks on which the two compared models give every item the same credit.

    ``samples[(task, seed)]`` maps model -> per-sample rows; ``splits[(task, seed)]`` is that
    run's SFS/TFS split (any further key parts, e.g. a student seed, are more replicates). A
    test item is counted once: its rows over the replicates are one cluster of the bootstrap,
    resampled within its task. The whole-test claim is the task average (tasks weigh the same, as
    in Table 1); the SFS/TFS claims pool the subset's rows over tasks. Columns: ``n`` test items
    (``n_rows`` item-replicate rows, ``n_ties`` items with equal credit on every row), scores, the
    difference with its 95% interval, p and ``mde`` (``power.mde``: the smallest true difference
    detected with 80% power at two-sided 5%); ``tie_tasks`` (space-separated) and the same
    statistics ``*_without_tie_tasks``. A claim is *supported* when the 95% interval lies above
    zero, *contradicted* when it lies below, *undecided* otherwise, *untestable* without items.
    """
    rows, present = [], set(next(iter(samples.values())))
    for claim, a, b, subset in CLAIMS:
        if not {a, b} <= present:  # a run of some methods only (cfg.methods): that claim is not asked
            continue
        credit = subset_credit(samples, splits, [a, b], subset)
        credit = {t: c for t, c in credit.items() if c[a].shape[1]}  # tasks with items in the subset
        diffs = {t: c[a] - c[b] for t, c in credit.items()}
        ties = {t: _ties(c) for t, c in credit.items()}
        tie_tasks = [t for t in diffs if ties[t].all()]
        weighting = "strata" if subset == "all" else "rows"
        row = {"claim": claim, "a": a, "b": b, "subset": subset, "n": sum(len(v) for v in ties.values()),
               "n_rows": int(sum((~np.isnan(d)).sum() for d in diffs.values())),
               "n_ties": int(sum(v.sum() for v in ties.values())), "tie_tasks": " ".join(tie_tasks)}
        for suffix, kept in (("", list(diffs)), ("_without_tie_tasks", [t for t in diffs if t not in tie_tasks])):
            stats = _claim_test([diffs[t] for t in kept], weighting, n_boot)
            row |= {f"n{suffix}": sum(len(ties[t]) for t in kept)} | {f"{k}{suffix}": v for k, v in stats.items()
                                                                      if suffix == "" or k != "p"}
        row["score_a"], row["score_b"] = ((power.estimate([credit[t][m] for t in credit], weighting) if credit
                                           else float("nan")) for m in (a, b))
        rows.append(row)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def _claim_test(strata: list[np.ndarray], weighting: str, n_boot: int) -> dict:
    if not strata:  # e.g. no sample where the SFT student beats the teacher
        return {k: float("nan") for k in ("diff", "lo", "hi", "p", "mde")} | {"verdict": "untestable"}
    test = clustered_test(strata, weighting, n_boot, seed=1)
    return {k: test[k] for k in ("diff", "lo", "hi", "p", "mde")} | {"verdict": _verdict(test["lo"], test["hi"])}


def _verdict(lo: float, hi: float) -> str:
    return "supported" if lo > 0 else "contradicted" if hi < 0 else "undecided"


def claims_text(table: pd.DataFrame, subtask_share: float, n_subtasks: int, rho: float, n_pairs: int,
                profile: str, n_seeds: int) -> str:
    """The verdicts in plain words, generated from the numbers (nothing here is hand-written per run)."""
    lines = [f"**What the `{profile}` results say** ({n_seeds} seed(s); 95% paired-bootstrap intervals over test "
             "items, each item drawn with all its seeds' rows so that it counts once; the whole-test claim is judged "
             "on the task average as in Table 1, the SFS/TFS claims on their items pooled across tasks, comparing "
             "distilled students only, since the subsets are defined by the SFT models' own errors; each claim is "
             "stated on all tasks and again without the tasks where the two models give every item the same credit; "
             "MDE: the smallest true difference a two-sided 5% test detects with 80% power, 2.8 clustered standard "
             "errors; intervals and MDE also resample the seeds' runs, so their training variance is in them, except "
             "for a teacher that several seeds share, which is one run):", ""]
    for r in table.itertuples():
        if r.verdict == "untestable":
            lines.append(f"- *{r.claim}*: **untestable** — no {r.subset} items in these runs.")
            continue
        ties = str(r.tie_tasks).split() if pd.notna(r.tie_tasks) else []
        rest = (f"; without {', '.join(ties)} (every item tied): " + (
            f"{r.n_without_tie_tasks} items, {r.diff_without_tie_tasks:+.3f} [{r.lo_without_tie_tasks:+.3f}, "
            f"{r.hi_without_tie_tasks:+.3f}], MDE {r.mde_without_tie_tasks:.3f}, **{r.verdict_without_tie_tasks}**."
            if r.verdict_without_tie_tasks != "untestable" else "no items left.")) if ties else "; no task is all ties."
        lines.append(f"- *{r.claim}*: **{r.verdict}** — {r.a} {r.score_a:.3f} vs {r.b} {r.score_b:.3f} on {r.n} "
                     f"{'test (task average)' if r.subset == 'all' else r.subset} items ({r.n_ties} tied; {r.n_rows} "
                     f"item-seed rows), difference {r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}], p = {r.p:.2f}; "
                     f"{power.undetected(r.mde)}" + rest)
    lines.append(f"- *the student beats the teacher on about 40% of sub-tasks*: here {subtask_share:.0%} of "
                 f"{n_subtasks} sub-tasks (a count, no interval; ties count as losses).")
    if np.isnan(rho):
        lines.append(f"- *the SFT-time SFS/TFS margin predicts the distillation outcome*: untestable here, the "
                     f"margins do not vary over the {n_pairs} task-seed pairs.")
    else:
        strength = "no" if abs(rho) < 0.3 else "a weak" if abs(rho) < 0.6 else "a clear"
        lines.append(f"- *the SFT-time SFS/TFS margin predicts the distillation outcome*: Spearman ρ = {rho:.2f} "
                     f"over {n_pairs} task-seed pairs, {strength} monotone relation.")
    decided = int(table.verdict.isin(["supported", "contradicted"]).sum())
    without = int(table.verdict_without_tie_tasks.isin(["supported", "contradicted"]).sum())
    lines += ["", f"{decided} of {len(table)} tested claims are decided at 95% on all tasks, {without} without the "
              "all-tie tasks."
              + (" An undecided claim is neither confirmed nor refuted by these runs." if decided < len(table) else "")]
    return "\n".join(lines)
