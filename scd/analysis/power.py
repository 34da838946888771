"""The resolution of a comparison over test items: its standard error and minimum detectable difference.

A test item is the unit of sampling. Its replicate rows (one per seed, or several student seeds per
teacher seed) are a cluster: they share the item, so they are not independent draws. The data of
one stratum (a task) is a ``[replicates, items]`` matrix; ``NaN`` marks a replicate an item lacks
(an item in the TFS of one seed but not of another), so the replicate axis may hold any number of
runs per item. The estimates are row means: of one stratum, of the rows pooled over strata
(``weighting="rows"``), or the mean over strata of each stratum's mean (``weighting="strata"``,
Table 1's task average, every task weighing the same).

The standard error is the cluster-level (linearised, "sandwich") one for items drawn with
replacement within each stratum, the design the clustered bootstrap of ``scd.analysis.sfs_tfs``
resamples. With ``z_j`` an item's row sum minus the estimate times its row count,

    SE² = Σ_strata n/(n−1) · Σ_items (z_j − z̄)² / (rows)²,

which for a full ``[replicates, items]`` matrix of one stratum is exactly
``var(per-item mean, ddof=1) / n_items``: repeating an item's rows leaves it unchanged. It is a
closed form, so the minimum detectable difference does not carry bootstrap noise; the
bootstrap's spread agrees with it up to the factor sqrt((n−1)/n).

    MDE = (z_{1−α/2} + z_{power}) · SE

is the true difference a two-sided test at level α detects with probability ``power`` (2.80 SE at
α = 0.05 and 80% power). The closed form conditions on the trained runs (seed-to-seed variance
enters only through each item's replicate mean); the tables take SE from the bootstrap that also
resamples the runs (``scd.analysis.sfs_tfs.clustered_test``), which is at least as large.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

ALPHA, POWER = 0.05, 0.80


def z_factor(alpha: float = ALPHA, power: float = POWER) -> float:
    """z_{1−α/2} + z_{power}: 1.960 + 0.842 = 2.802 at the defaults."""
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def mde(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The minimum detectable difference of an estimate with standard error ``se``."""
    return z_factor(alpha, power) * float(se)


def cluster_totals(matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per item (column of a ``[replicates, items]`` matrix, NaN = no row): its row sum and row count;
    a column without rows is no item and is dropped."""
    m = np.atleast_2d(np.asarray(matrix, dtype=float))
    present = ~np.isnan(m)
    keep = present.any(axis=0)
    return np.where(present, m, 0.0).sum(axis=0)[keep], present.sum(axis=0)[keep].astype(float)


def estimate(strata, weighting: str = "rows") -> float:
    """The row mean (pooled over strata: ``"rows"``) or the mean of the strata's row means (``"strata"``)."""
    totals = [cluster_totals(m) for m in strata]
    if weighting == "strata":
        return float(np.mean([s.sum() / k.sum() for s, k in totals]))
    if weighting != "rows":
        raise ValueError(f"unknown weighting {weighting!r}; expected 'rows' or 'strata'")
    return float(sum(s.sum() for s, _ in totals) / sum(k.sum() for _, k in totals))


def _spread(sums: np.ndarray, sizes: np.ndarray, r: float) -> float:
    """n/(n−1) · Σ (z − z̄)² with z = sums − r·sizes: the variance of a stratum's resampled total of z."""
    z = sums - r * sizes
    n = len(z)
    return float(((z - z.mean()) ** 2).sum() * (n / (n - 1) if n > 1 else 1.0))


def clustered_se(strata, weighting: str = "rows") -> float:
    """Standard error of ``estimate(strata, weighting)`` with items (columns) as clusters, stratified
    by the matrices of ``strata`` (see the module's docstring for the formula)."""
    totals = [cluster_totals(m) for m in strata]
    if weighting == "strata":
        var = sum(_spread(s, k, s.sum() / k.sum()) / k.sum() ** 2 for s, k in totals) / len(totals) ** 2
    else:
        r, rows = estimate(strata, weighting), sum(k.sum() for _, k in totals)
        var = sum(_spread(s, k, r) for s, k in totals) / rows ** 2
    return float(np.sqrt(var))


def undetected(mde_value: float) -> str:
    """A minimum detectable difference in words; a zero one means the items' differences do not vary
    (every item tied, say), which leaves nothing to measure the resolution by."""
    if not mde_value > 0:
        return "the items' differences do not vary, so the resolution cannot be measured"
    return f"an effect smaller than {mde_value:.3f} would go undetected"
