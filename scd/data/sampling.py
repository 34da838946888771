"""Seeded, label-aware subsets: how dev, probes, capped train sets and balanced train sets are drawn."""
from __future__ import annotations

from collections import Counter

import numpy as np

from scd.core.io import DataError

DATA_SEED = 20260115


def stratified_take(labels: list[str], n: int, seed: int) -> np.ndarray:
    """Indices of an n-item subset whose label mix matches ``labels`` (largest remainder)."""
    rng = np.random.default_rng(seed)
    counts = Counter(labels)
    quota = {k: n * v / len(labels) for k, v in counts.items()}
    alloc = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - alloc[k]), k))[: n - sum(alloc.values())]:
        alloc[k] += 1
    chosen = []
    for k in sorted(counts):
        idx = np.flatnonzero(np.asarray(labels) == k)
        chosen.extend(rng.permutation(idx)[: alloc[k]].tolist())
    return np.sort(np.asarray(chosen, dtype=int))


def balanced_train(train: list[dict], test_labels: list[str], n: int, seed: int) -> tuple[list[dict], int]:
    """``n`` train items whose label mix is the test set's (largest remainder), instead of the
    pool's skew (CRADE's pool is 85% "A", its test set 25% of each label). A label with fewer
    items than its quota has them repeated, each pass in a fresh seeded order; a repeat gets the
    id ``<id>#r<k>`` so that every train id stays unique. Returns the items (in pool order, the
    repeats after) and how many are repeats."""
    rng = np.random.default_rng(seed)
    prior = Counter(test_labels)
    by_label = {k: [i for i, r in enumerate(train) if r["label"] == k] for k in sorted(prior)}
    missing = [k for k, idx in by_label.items() if not idx]
    if missing:
        raise DataError(f"balanced sampling: the train split has no item with label(s) {missing} that the test set has")
    quota = {k: n * v / len(test_labels) for k, v in prior.items()}
    alloc = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - alloc[k]), k))[: n - sum(alloc.values())]:
        alloc[k] += 1
    first, repeats = [], []
    for k, idx in by_label.items():
        take = [int(i) for _ in range(-(-alloc[k] // len(idx))) for i in rng.permutation(idx)][: alloc[k]]
        first += take[: len(idx)]
        repeats += [dict(train[i], id=f"{train[i]['id']}#r{j // len(idx)}") for j, i in enumerate(take) if j >= len(idx)]
    return [train[i] for i in sorted(first)] + repeats, len(repeats)
