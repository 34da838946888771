"""Tables for the README and the notebooks: plain DataFrames written as CSV, markdown and LaTeX."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from scd.core.tasks import TASKS
from scd.data.corpus import main_passage
from scd.data.splits import load_task
from scd.core.io import write_table


def data_summary(data_root=None, max_train: int | None = None) -> pd.DataFrame:
    """Split sizes, label balance and prompt lengths (characters) of every task."""
    rows = []
    for name, task in TASKS.items():
        splits = load_task(name, data_root, max_train=max_train)
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


def passage_overlap(data_root=None) -> pd.DataFrame:
    """Test and dev items whose passage (:func:`scd.data.benchmark.main_passage`) also occurs in a train
    split, of the same task or of any task: the splits are disjoint by question, not by passage, so
    these passages reach the tokenizer and base-LM corpus unless ``corpus_excludes_eval`` is set."""
    splits = {name: load_task(name, data_root) for name in TASKS}
    train = {name: {main_passage(r) for r in s["train"]} - {None} for name, s in splits.items()}
    anywhere = set().union(*train.values())
    rows = []
    for name, s in splits.items():
        for split in ("dev", "test"):
            mains = [main_passage(r) for r in s[split]]
            rows.append({"task": name, "split": split, "n": len(mains),
                         "passage_in_own_train": sum(p in train[name] for p in mains),
                         "passage_in_any_train": sum(p in anywhere for p in mains),
                         "distinct_shared_passages": len(set(mains) & anywhere)})
    return pd.DataFrame(rows)


def write_data_summary(out_dir: str | Path = "results", data_root=None) -> tuple[pd.DataFrame, list[Path]]:
    frame = data_summary(data_root)
    paths = write_table(Path(out_dir) / "passage_overlap", passage_overlap(data_root), floatfmt=".0f")
    return frame, write_table(Path(out_dir) / "data_summary", frame, floatfmt=".0f") + paths


def prompt_cuts(cfg, tok, data_root=None, split: str = "test") -> pd.DataFrame:
    """What the prompt cut removes, for the profile's room and tokenizer, under both rules: the
    share of prompts cut, of their tokens removed, of cut prompts whose instruction, question and
    options (everything outside the passage) survive whole, and of those whose passage mention of
    the asked-about term (CRADE) survives."""
    from scd.data.encoding import kept_positions, passage_focus, prompt_room

    rows = []
    for name in cfg.tasks:
        records = load_task(name, data_root)[split]
        encoded = [(r, tok(r["prompt"], return_offsets_mapping=True)) for r in records]
        for rule in ("middle", "passage"):
            cut = removed = whole = term_n = term_kept = 0
            for rec, enc in encoded:
                n, room = len(enc["input_ids"]), prompt_room(rec, cfg)
                if n <= room:
                    continue
                offsets = enc["offset_mapping"]
                kept = set(kept_positions(n, offsets, rec["prompt"], room, rule))
                cut, removed = cut + 1, removed + (n - room) / n
                where = passage_focus(rec["prompt"])
                start, end, focus = where or (0, len(rec["prompt"]), None)
                outside = [i for i, (a, b) in enumerate(offsets) if b > a and (b <= start or a >= end)]
                whole += all(i in kept for i in outside)
                if focus is not None:
                    at = next(i for i, (a, b) in enumerate(offsets) if b > focus)
                    term_n, term_kept = term_n + 1, term_kept + (at in kept)
            rows.append({"task": name, "rule": rule, "split": split, "n": len(records), "cut": cut,
                         "tokens_removed_share": removed / cut if cut else 0.0,
                         "rest_whole_share": whole / cut if cut else float("nan"),
                         "term_kept_share": term_kept / term_n if term_n else float("nan")})
    return pd.DataFrame(rows)
