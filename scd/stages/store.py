"""The stage store: where a computed stage lives, what identifies it, and compute-or-load.

A stage (tokenizer, base LM, SFT, target cache, distillation) is keyed by everything it depends
on: the config fields that declare it in their ``key`` metadata, the keys of the stages it
reads, the checksums of the data files it reads, and ``KEY_SCHEMA``. Its folder is
``runs/<profile>/<kind>-<readable label>-<hash of the key>``. A stage is complete only when its
``done.json`` exists (written last, atomically, by rank 0); anything else in its folder is a
partial run that the stage resumes from.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from scd.data.files import data_dir, verify
from scd.core import ranks
from scd.core.environment import threads_wanted
from scd.core.io import config_hash, json_form, project_path, write_json
from scd.core.records import Record
from scd.core.tasks import TASKS, get_task

if TYPE_CHECKING:
    from scd.core.config import Config

# What a stage key means, versioned: a change in how a run is done that no config field shows
# bumps it, so earlier runs are recomputed instead of silently reused. 1 (unversioned): checkpoint
# selection on chance-corrected dev scores; prompts cut to an answer-independent room. 2: prompts
# start with the tokenizer's BOS when it adds one; batch sizes are global; SCD's selection terms
# key every SCD run; ``max_eval`` takes a label-stratified sample. 3: keys built from the config's
# field metadata (``scd.core.config``), data checksums in every key, typed records, readable folder names.
KEY_SCHEMA = 3
DONE = "done.json"


def runs_root() -> Path:
    return Path(os.environ.get("SCD_RUNS_DIR") or project_path("runs"))


@contextmanager
def runs_under(folder: str | Path):
    """Stages go under ``folder`` while the block runs, unless ``SCD_RUNS_DIR`` names a folder: a
    user's run keeps its checkpoints next to its results, never in the package checkout. Set in
    the environment, so every process the run starts sees the same folder. Yields the folder used."""
    if os.environ.get("SCD_RUNS_DIR"):
        yield runs_root()
        return
    os.environ["SCD_RUNS_DIR"] = str(Path(folder).resolve())
    try:
        yield runs_root()
    finally:
        os.environ.pop("SCD_RUNS_DIR", None)


def data_checksums(tasks, data_root=None) -> dict[str, str]:
    """Checksums of every file the named tasks read (test file and pools): part of the key of any
    stage that reads them."""
    cards = [get_task(name).card for name in tasks if get_task(name).card is not None]
    files = sorted({f for name in tasks if get_task(name).card is None
                    for f in (get_task(name).test_file, *get_task(name).pool_files)})
    sums = verify(data_dir(data_root), files) if files else {}
    return sums | {k: v for card in cards for k, v in card.checksum().items()}


def corpus_task_names(cfg: Config) -> tuple[str, ...]:
    return tuple(sorted(cfg.corpus_tasks or TASKS))


def stage_key(cfg: Config, stage: str, role: str | None = None, **parts) -> dict:
    """The key of one stage: the config fields declared for it plus the stage's own ``parts``
    (the keys of the stages it reads, its task, seed, method, data checksums). In JSON form, so a
    key equals itself read back from a record."""
    kind = get_task(parts["task"]).kind if "task" in parts else None
    return json_form({"schema": KEY_SCHEMA, "stage": stage} | cfg.key_fields(stage, role, kind) | parts)


def stage_dir(cfg: Config, key: dict, *label) -> Path:
    """``runs/<profile>/<label parts>-<hash>``: a folder a person can read, unique by its key."""
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in label)
    return runs_root() / cfg.profile / f"{name}-{config_hash(key)}"


def is_done(path: Path) -> bool:
    return (path / DONE).is_file()


def threads() -> None:
    """All cores shared by the processes of this node, or ``SCD_THREADS`` (see scd.core.environment)."""
    torch.set_num_threads(threads_wanted(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def compute_or_load(path: Path, record: type[Record], build: Callable[[Path], Record | None],
                    everyone: bool = True):
    """The stage's record, computing it first if it is not done.

    ``build(path)`` runs on every rank of a launch (``everyone``: training is collective) or on
    rank 0 alone (downloads, tokenizer training); it returns the record on rank 0 (other ranks
    may return None). Rank 0 writes ``done.json``; every rank then reads it. The barrier before
    the check makes all ranks take the same branch.
    """
    ranks.barrier()
    if not is_done(path):
        if everyone or ranks.is_main():
            threads()
            result = build(path)
            if ranks.is_main():
                if not isinstance(result, record):
                    raise TypeError(f"{path}: the stage built {type(result).__name__}, expected {record.__name__}")
                write_json(path / DONE, result.to_json())
        ranks.barrier()
    return record.read(path / DONE)
