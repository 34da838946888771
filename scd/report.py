"""Tables for the README and the notebooks: plain DataFrames written as CSV, markdown and LaTeX."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from scd.data import TASKS, load_task, passages
from scd.io import write_table


def data_summary(root=None, max_train: int | None = None) -> pd.DataFrame:
    """Split sizes, label balance and prompt lengths (characters) of every task."""
    rows = []
    for name, task in TASKS.items():
        splits = load_task(name, root, max_train=max_train)
        stats = splits.pop("stats")
        for split, recs in splits.items():
            labels = Counter(r["label"] for r in recs)
            lengths = np.array([len(r["prompt"]) for r in recs])
            rows.append({
                "task": name, "kind": task.kind, "lang": task.lang, "split": split, "n": len(recs),
                "labels": " ".join(f"{k}:{v}" for k, v in sorted(labels.items())),
                "prompt_chars_mean": float(lengths.mean()), "prompt_chars_max": int(lengths.max()),
                "pool_rows_in_test": stats.get("pool_in_test", 0) if split == "test" else 0,
                "duplicates_dropped": stats.get("pool_duplicates_dropped", 0) if split == "train" else 0,
                "train_not_used": stats.get("train_not_used", 0) if split == "train" else 0,
            })
    return pd.DataFrame(rows)


def passage_overlap(root=None) -> pd.DataFrame:
    """Test and dev items whose passage also occurs in a train split (of any task): the splits are
    disjoint by question, not by passage, so these passages reach the tokenizer and base-LM corpus
    unless ``corpus_excludes_eval`` is set."""
    splits = {name: load_task(name, root) for name in TASKS}
    train = {p for s in splits.values() for r in s["train"] for p in passages(r)}
    rows = []
    for name, s in splits.items():
        for split in ("dev", "test"):
            shared = [r for r in s[split] if set(passages(r)) & train]
            rows.append({"task": name, "split": split, "n": len(s[split]), "items_with_train_passage": len(shared),
                         "distinct_shared_passages": len({p for r in shared for p in passages(r)} & train)})
    return pd.DataFrame(rows)


def write_data_summary(out_dir: str | Path = "results", root=None) -> tuple[pd.DataFrame, list[Path]]:
    frame = data_summary(root)
    paths = write_table(Path(out_dir) / "passage_overlap", passage_overlap(root), floatfmt=".0f")
    return frame, write_table(Path(out_dir) / "data_summary", frame, floatfmt=".0f") + paths
