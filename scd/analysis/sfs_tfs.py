"""SFS/TFS analysis and the statistics the paper does not give.

With per-sample risks ℓ_T, ℓ_S of the SFT'd teacher and student, SFS = {ℓ_S < ℓ_T} and
TFS = the rest (ties included), and exactly
    R_T − R_S = P(SFS)·E[ℓ_T − ℓ_S | SFS] − P(TFS)·E[ℓ_S − ℓ_T | TFS].
Risk is either the gold-sequence loss or the 0/1 error (1 − per-sample credit).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

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


def bootstrap_ci(scores: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile interval of a ``[seeds, items]`` score matrix, resampling both axes."""
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    rng = np.random.default_rng(seed)
    n_seeds, n_items = scores.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    items = rng.integers(0, n_items, size=(n_boot, n_items))
    boot = np.array([scores[np.ix_(s, i)].mean() for s, i in zip(seeds, items)])
    alpha = (1 - level) / 2
    return float(scores.mean()), float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Paired bootstrap of mean(a − b) over the same items (and seeds): interval and a two-sided p."""
    diff = np.atleast_2d(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    mean, lo, hi = bootstrap_ci(diff, n_boot, level, seed)
    rng = np.random.default_rng(seed + 1)
    centred = diff - diff.mean()
    null = np.array([centred[:, rng.integers(0, diff.shape[1], diff.shape[1])].mean() for _ in range(n_boot)])
    p = float((np.abs(null) >= abs(mean)).mean())
    return {"diff": mean, "lo": lo, "hi": hi, "p": p, "distinguishable": not (lo <= 0.0 <= hi)}


def task_average_ci(per_task: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float, float]:
    """Mean over tasks of ``[seeds, items]`` matrices (each task weighs the same, as in Table 1);
    each replicate resamples every task's seeds and items. Returns mean, 95% interval and a
    two-sided bootstrap p for "the mean is zero" (meaningful for difference matrices)."""
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    for m in per_task.values():
        s, n = m.shape
        for b in range(n_boot):
            boots[b] += m[np.ix_(rng.integers(0, s, s), rng.integers(0, n, n))].mean()
    boots /= len(per_task)
    mean = float(np.mean([m.mean() for m in per_task.values()]))
    p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return mean, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), p


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


def claim_table(samples: dict, splits: dict, n_boot: int = 2000) -> pd.DataFrame:
    """Paired bootstrap of each claim's score difference, items pooled over tasks and seeds.

    ``samples[(task, seed)]`` maps model -> per-sample rows; ``splits[(task, seed)]`` is that
    run's SFS/TFS split. A claim is *supported* when the 95% interval lies above zero,
    *contradicted* when it lies below, and *undecided* otherwise.
    """
    rows, present = [], set(next(iter(samples.values())))
    for claim, a, b, subset in CLAIMS:
        if not {a, b} <= present:  # a run of some methods only (cfg.methods): that claim is not asked
            continue
        if subset == "all":
            rows.append(_average_claim(claim, a, b, samples, n_boot))
            continue
        da, db = [], []
        for key, frames in samples.items():
            domain = splits[key].set_index("id")["domain"]
            ids = domain.index[domain == subset]
            da.append(frames[a].set_index("id").loc[ids, "correct"].to_numpy(float))
            db.append(frames[b].set_index("id").loc[ids, "correct"].to_numpy(float))
        a_all, b_all = np.concatenate(da), np.concatenate(db)
        row = {"claim": claim, "a": a, "b": b, "subset": subset, "n": len(a_all)}
        if not len(a_all):  # e.g. no sample where the SFT student beats the teacher
            rows.append(row | {k: float("nan") for k in ("score_a", "score_b", "diff", "lo", "hi", "p")}
                        | {"verdict": "untestable"})
            continue
        test = paired_difference(a_all, b_all, n_boot=n_boot)
        rows.append(row | {"score_a": a_all.mean(), "score_b": b_all.mean(), "diff": test["diff"], "lo": test["lo"],
                           "hi": test["hi"], "p": test["p"], "verdict": _verdict(test["lo"], test["hi"])})
    return pd.DataFrame(rows, columns=["claim", "a", "b", "subset", "n", "score_a", "score_b", "diff", "lo", "hi", "p",
                                       "verdict"])


def _average_claim(claim: str, a: str, b: str, samples: dict, n_boot: int) -> dict:
    """A whole-test-set claim, judged like Table 1's average: tasks weigh the same, seeds and
    items are resampled per task (pooling items would let PubMedQA's 500 outweigh the rest)."""
    per_task: dict[str, list] = {}
    for (task, _seed), frames in sorted(samples.items()):
        fa, fb = frames[a].sort_values("id"), frames[b].sort_values("id")
        per_task.setdefault(task, []).append((fa["correct"].to_numpy(float), fb["correct"].to_numpy(float)))
    diffs = {t: np.stack([x - y for x, y in pairs]) for t, pairs in per_task.items()}
    diff, lo, hi, p = task_average_ci(diffs, n_boot, seed=1)
    score_a = float(np.mean([np.mean([x for x, _ in pairs]) for pairs in per_task.values()]))
    score_b = float(np.mean([np.mean([y for _, y in pairs]) for pairs in per_task.values()]))
    return {"claim": claim, "a": a, "b": b, "subset": "all", "n": sum(len(x) for pairs in per_task.values() for x, _ in pairs),
            "score_a": score_a, "score_b": score_b, "diff": diff, "lo": lo, "hi": hi, "p": p, "verdict": _verdict(lo, hi)}


def _verdict(lo: float, hi: float) -> str:
    return "supported" if lo > 0 else "contradicted" if hi < 0 else "undecided"


def claims_text(table: pd.DataFrame, subtask_share: float, n_subtasks: int, rho: float, n_pairs: int,
                profile: str, n_seeds: int) -> str:
    """The verdicts in plain words, generated from the numbers (nothing here is hand-written per run)."""
    lines = [f"**What the `{profile}` results say** ({n_seeds} seed(s); 95% paired-bootstrap intervals; the "
             "whole-test claim is judged on the task average as in Table 1, the SFS/TFS claims on their items "
             "pooled across tasks and seeds, comparing distilled students only, since the subsets are defined by "
             "the SFT models' own errors):", ""]
    for r in table.itertuples():
        if r.verdict == "untestable":
            lines.append(f"- *{r.claim}*: **untestable** — no {r.subset} items in these runs.")
            continue
        lines.append(f"- *{r.claim}*: **{r.verdict}** — {r.a} {r.score_a:.3f} vs {r.b} {r.score_b:.3f} on "
                     f"{r.n} {'test (task average)' if r.subset == 'all' else r.subset} items, difference {r.diff:+.3f} "
                     f"[{r.lo:+.3f}, {r.hi:+.3f}], p = {r.p:.2f}.")
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
    lines += ["", f"{decided} of {len(table)} tested claims are decided at 95%."
              + (" An undecided claim is neither confirmed nor refuted by these runs." if decided < len(table) else "")]
    return "\n".join(lines)
