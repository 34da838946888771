"""A task's train / dev / test records, whichever reader its files need.

Splits are fixed for every run seed (seeds vary training, never the data): test = the official
evaluation file (or a card's split), dev = a slice of the rest (label-stratified, or with equal
label counts for choice and yes/no tasks: ``dev_sampling="uniform"``), train = what remains.
"""
from __future__ import annotations

from collections import Counter

from scd.core.io import DataError
from scd.core.tasks import get_task
from scd.data.benchmark import jmed_records, pubmedqa_records
from scd.data.cards import card_splits
from scd.data.files import data_dir
from scd.data.sampling import DATA_SEED, balanced_train, stratified_take, uniform_take

DEV_FRACTION = 0.2
DEV_MAX = 100
DEV_SAMPLING = ("stratified", "uniform")
TRAIN_SAMPLING = ("natural", "uniform")


def card_reader(task, data_root, seed):
    """A task card's rows; its splits come from the data or from the seeded rule."""
    test, dev, pool = card_splits(task.card, seed)
    return test, dev, pool, Counter()


def jmed_reader(task, data_root, seed):
    test, pool, stats = jmed_records(task, data_dir(data_root))
    return test, None, pool, stats


def pubmedqa_reader(task, data_root, seed):
    test, pool, stats = pubmedqa_records(task, data_dir(data_root))
    return test, None, pool, stats


# Task.reader -> (task, data_root, seed) -> (test, dev or None to draw it, pool, counts)
READERS = {"jmed": jmed_reader, "pubmedqa": pubmedqa_reader, "card": card_reader}


def load_task(name: str, data_root=None, max_train: int | None = None, seed: int = DATA_SEED,
              dev_sampling: str = "stratified") -> dict[str, list[dict]]:
    """All splits of one task; ``max_train`` caps train by a seeded stratified subsample (counted)."""
    if dev_sampling not in DEV_SAMPLING:
        raise ValueError(f"dev_sampling={dev_sampling!r}: expected one of {list(DEV_SAMPLING)}")
    task = get_task(name)
    if task.reader not in READERS:
        raise ValueError(f"task {name!r}: unknown reader {task.reader!r}; expected one of {sorted(READERS)}")
    test, dev, pool, stats = READERS[task.reader](task, data_root, seed)
    if dev is None:
        n_dev = min(DEV_MAX, round(DEV_FRACTION * len(pool)))
        take = uniform_take if dev_sampling == "uniform" and task.kind in ("choice", "yesno") else stratified_take
        dev_idx = set(take([r["label"] for r in pool], n_dev, seed).tolist())
        dev = [r for i, r in enumerate(pool) if i in dev_idx]
        train = [r for i, r in enumerate(pool) if i not in dev_idx]
    else:
        train = pool
    if max_train is not None and len(train) > max_train:
        keep = stratified_take([r["label"] for r in train], max_train, seed + 1)
        stats["train_not_used"] = len(train) - max_train
        train = [train[i] for i in keep]
    splits = {"train": train, "dev": dev, "test": test}
    for split, records in splits.items():
        for r in records:
            r.update(task=name, split=split, lang=task.lang, kind=task.kind)
    check_disjoint(splits)
    splits["stats"] = dict(stats)  # type: ignore[assignment]
    return splits


def load_splits(name: str, data_root=None, max_train: int | None = None, max_eval: int | None = None,
                sampling: str = "natural", dev_sampling: str = "stratified") -> dict:
    """The task's splits as a run uses them: ``max_train`` applied (``sampling="uniform"``: equal
    label counts, see :func:`balanced_train`), and ``max_eval`` as a label-stratified sample of
    dev and test (the test files are sorted by label, so their first items would all share one
    answer), counted in ``stats``."""
    if sampling not in TRAIN_SAMPLING:
        raise ValueError(f"sampling={sampling!r}: expected one of {list(TRAIN_SAMPLING)}")
    balanced = sampling == "uniform" and get_task(name).kind in ("choice", "yesno")
    splits = load_task(name, data_root, max_train=None if balanced else max_train, dev_sampling=dev_sampling)
    if balanced:
        splits["train"], repeated = balanced_train(splits["train"], max_train or len(splits["train"]), DATA_SEED + 3)
        splits["stats"]["train_repeated"] = repeated
    for split in ("dev", "test"):
        records = splits[split]
        if max_eval and len(records) > max_eval:
            keep = stratified_take([r["label"] for r in records], max_eval, DATA_SEED + 2)
            splits[split] = [records[i] for i in keep]
            splits["stats"][f"{split}_not_used"] = len(records) - max_eval
    return splits


def check_disjoint(splits: dict[str, list[dict]]) -> None:
    """No id and no question text may appear in two splits (or twice in one)."""
    for key in ("id", "question"):
        owner: dict[str, str] = {}
        for split in ("train", "dev", "test"):
            for r in splits[split]:
                if r[key] in owner:
                    raise DataError(f"{key} {r[key][:60]!r} appears in {owner[r[key]]} and {split}")
                owner[r[key]] = split
