"""The benchmark tasks by name: which files each reads, how its answers are scored, its language.

Plain data with no dependencies, so the config, the data loader and the scorer all name tasks
from one list without importing each other. A task defined by a task card (``scd.data.cards``: the
user's own file) is registered here under its name and looked up like a built-in one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LETTERS = "ABCDEF"
QUOTED = re.compile(r"「(.+?)」", re.S)  # a JMED-LLM question's passage or quoted term


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "choice" | "ner" | "yesno" | "text": how answers are parsed and scored
    lang: str
    test_file: str
    pool_files: tuple[str, ...]
    pool_tags: frozenset[str] | None = None
    n_options: int = 0
    kappa_weights: str | None = None
    card: object | None = None  # scd.core.cards.TaskCard of a task read from the user's file; None: built-in
    reader: str = "jmed"  # how its files are read: a key of scd.data.splits.READERS


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("jmmlu_med", "choice", "ja", "jmed-llm/datasets/jmmlu_med.csv",
             ("jmed-llm/datasets/all/JMMLU-Med.csv",), n_options=4),
        Task("crade", "choice", "ja", "jmed-llm/datasets/crade.csv",
             ("jmed-llm/datasets/all/CRADE.csv",), n_options=4, kappa_weights="linear"),
        Task("rrtnm", "choice", "ja", "jmed-llm/datasets/rrtnm.csv",
             ("jmed-llm/datasets/all/RRTNM.csv",), n_options=5),
        Task("smdis", "choice", "ja", "jmed-llm/datasets/smdis.csv",
             ("jmed-llm/datasets/all/SMDIS.csv",), n_options=2),
        Task("nrner", "ner", "ja", "jmed-llm/datasets/nrner.csv", ("jmed-llm/datasets/all/NRNER.csv",)),
        Task("mrner_disease", "ner", "ja", "jmed-llm/datasets/mrner_disease.csv",
             ("jmed-llm/datasets/all/CRNER.csv", "jmed-llm/datasets/all/RRNER.csv"), frozenset({"d"})),
        Task("mrner_medicine", "ner", "ja", "jmed-llm/datasets/mrner_medicine.csv",
             ("jmed-llm/datasets/all/CRNER.csv",), frozenset({"m-key", "m-val"})),
        Task("pubmedqa", "yesno", "en", "pubmedqa/data/test_ground_truth.json",
             ("pubmedqa/data/ori_pqal.json",), reader="pubmedqa"),
    ]
}


FILE_TASKS: dict[str, Task] = {}  # registered from task cards, by name (never a built-in name)


def register(task: Task) -> Task:
    """Make a card's task known by name; registering the same definition again is a no-op."""
    if task.name in TASKS:
        raise ValueError(f"task name {task.name!r} is a built-in task; give the task card another name")
    if task.name in FILE_TASKS and FILE_TASKS[task.name] != task:
        raise ValueError(f"task {task.name!r} is already defined by another task card "
                         f"({FILE_TASKS[task.name].card.source}); task names must be unique")
    FILE_TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name in TASKS:
        return TASKS[name]
    if name in FILE_TASKS:
        return FILE_TASKS[name]
    known = ", ".join([*TASKS, *FILE_TASKS])
    raise ValueError(f"unknown task {name!r}; expected one of {known} (or a task card: --task-card FILE)")
