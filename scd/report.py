"""Tables for the README and the notebooks: plain DataFrames written as CSV, markdown and LaTeX."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from scd.data import TASKS, load_task
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


def write_data_summary(out_dir: str | Path = "results", root=None) -> tuple[pd.DataFrame, list[Path]]:
    frame = data_summary(root)
    return frame, write_table(Path(out_dir) / "data_summary", frame, floatfmt=".0f")
