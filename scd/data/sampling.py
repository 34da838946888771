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


def uniform_take(labels: list[str], n: int, seed: int) -> np.ndarray:
    """Indices of an n-item subset with as equal a count per label as the labels allow: each label
    gets n / K, a label with fewer items gives all it has and the others share the rest (water
    filling). A dev set drawn this way scores a model that always gives one answer at chance, not
    at the pool's majority share."""
    rng = np.random.default_rng(seed)
    counts = Counter(labels)
    n = min(n, len(labels))
    alloc, left = dict.fromkeys(counts, 0), n
    while left:
        open_ = sorted(k for k in counts if alloc[k] < counts[k])
        share, extra = divmod(left, len(open_))
        for i, k in enumerate(open_):
            add = min(share + (i < extra), counts[k] - alloc[k])
            alloc[k] += add
            left -= add
    chosen = []
    for k in sorted(counts):
        idx = np.flatnonzero(np.asarray(labels) == k)
        chosen.extend(rng.permutation(idx)[: alloc[k]].tolist())
    return np.sort(np.asarray(chosen, dtype=int))


def balanced_train(train: list[dict], n: int, seed: int) -> tuple[list[dict], int]:
    """``n`` train items with the same count of every label the pool has (largest remainder),
    instead of the pool's skew (CRADE's pool is 85% "A"). Our choice: uniform, so that no test
    information enters training. A label with fewer items than its quota has them repeated, each
    pass in a fresh seeded order; a repeat gets the id ``<id>#r<k>`` so that every train id stays
    unique. Returns the items (in pool order, the repeats after) and how many are repeats."""
    rng = np.random.default_rng(seed)
    by_label = {k: [i for i, r in enumerate(train) if r["label"] == k] for k in sorted({r["label"] for r in train})}
    if not by_label:
        raise DataError("balanced sampling: the train split is empty")
    quota = {k: n / len(by_label) for k in by_label}
    alloc = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - alloc[k]), k))[: n - sum(alloc.values())]:
        alloc[k] += 1
    first, repeats = [], []
    for k, idx in by_label.items():
        take = [int(i) for _ in range(-(-alloc[k] // len(idx))) for i in rng.permutation(idx)][: alloc[k]]
        first += take[: len(idx)]
        repeats += [dict(train[i], id=f"{train[i]['id']}#r{j // len(idx)}") for j, i in enumerate(take) if j >= len(idx)]
    return [train[i] for i in sorted(first)] + repeats, len(repeats)
