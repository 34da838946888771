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
