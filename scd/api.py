"""SCD+AW on your own domain: a task card, a teacher and a student, one call.

    from scd import api as domain
    card = domain.write_card("my_task.yaml", name="my_task", data="my_task.jsonl", kind="choice",
                             prompt="question", answer="label", labels=["A", "B", "C", "D"])
    run = domain.run(card, teacher="path/to/teacher", student="path/to/student", methods=["scd_aw"],
                     profile="cpu", out="scd-my_task")
    run.table1()                 # Table 1's rows: teacher, student, SCD+AW, the n-gram reference
    run.samples("scd_aw")        # per-item test rows (prediction, credit, gold loss)

Without a card, a file of ``prompt``/``completion`` rows (the usual SFT layout) is a free-text task
named after the file: ``domain.run("my_task.jsonl", ...)``.

Everything runs through the same stages as the built-in tasks (compute-or-load, resumable), and
writes the same ``results/<profile>/`` files, so notebooks 04–06 open it with
``results_dir=<out>/results`` and ``task_cards=<card>``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scd.core.config import Config, get_config
from scd.core.io import user_path
from scd.core.methods import METHODS, is_baseline, sft_role
from scd.core.cards import TaskCard, card_from_dict, load_card


def write_card(path: str | Path, **keys) -> Path:
    """A task card file from its keys (see ``scd.data.cards.TaskCard``), checked by loading it back."""
    import yaml

    path = user_path(path)
    card_from_dict(dict(keys), str(path), path.parent)  # checked before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in keys.items()},
                                  allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def data_card(data: str | Path) -> TaskCard:
    """The card of a data file given without one, in the common SFT layout: ``prompt`` and
    ``completion`` fields, a free-text task named after the file, split by the default rule. Built
    in memory; its ``source`` is the data itself (``is_data_card``)."""
    data = str(data) if str(data).startswith("hub:") else str(user_path(data))
    name = re.sub(r"[^A-Za-z0-9_-]", "_", Path(data.removeprefix("hub:")).stem)
    return card_from_dict({"name": name, "data": data, "kind": "text", "prompt": "prompt", "answer": "completion"},
                          source=data)


def is_data_card(card: TaskCard) -> bool:
    return card.source == card.data


def task_card(path: str | Path) -> TaskCard:
    """A card file (``.yaml``/``.yml``, or a ``.json`` object with a ``kind``), or else a data file
    read as prompt/completion rows (``data_card``)."""
    if str(path).startswith("hub:"):
        return data_card(path)
    path = user_path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_card(path)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            values = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError:  # JSON lines, or not JSON at all: data (its reader names the line)
            values = None
        if isinstance(values, dict) and "kind" in values:
            return load_card(path)
    return data_card(path)


def check_cards(cards) -> list[TaskCard]:
    """Every card and every row of its data read and checked, with its splits (seconds): a bad
    row stops the run before any tokenizer or model work, naming the file and the row."""
    from scd.data.cards import card_splits
    from scd.data.sampling import DATA_SEED

    loaded = [task_card(c) for c in ([cards] if isinstance(cards, (str, Path)) else cards)]
    for card in loaded:
        card_splits(card, DATA_SEED)
    return loaded


def card_file(card: TaskCard, folder: str | Path) -> Path:
    """A card file for a card built in memory (the config, and every process of a launch, name
    cards by file): ``<folder>/<name>.card.yaml``, rewritten only when it differs."""
    import yaml

    if not is_data_card(card):
        return Path(card.source)
    path = user_path(folder) / f"{card.name}.card.yaml"
    text = yaml.safe_dump({"name": card.name, "data": card.data, "kind": card.kind, "prompt": card.prompt,
                           "answer": card.answer}, allow_unicode=True, sort_keys=False)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # several processes may write it at once
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path


def export_builtin(task: str, folder: str | Path, fmt: str = "jsonl", name: str | None = None, data_root=None) -> Path:
    """A built-in task's splits as a task file with a split column, and its card: the same data
    through the generic path (notebook 9; the test that both paths score alike)."""
    from scd.data.splits import load_task
    from scd.data.cards import write_task_file
    from scd.core.tasks import LETTERS, get_task

    spec, splits = get_task(task), load_task(task, data_root)
    name = name or f"{task}_file"
    records = [r | {"id": r["id"].split("/", 1)[1]} for s in ("train", "dev", "test") for r in splits[s]]
    data = write_task_file(records, user_path(folder) / f"{name}.{fmt}")
    labels = {"choice": list(LETTERS[:spec.n_options]), "yesno": ["yes", "no", "maybe"]}.get(spec.kind)
    # its base LMs read the benchmark corpus, as the built-in task's do, so both paths train alike
    keys = dict(name=name, data=data.name, kind=spec.kind, id="id", split="split", tag="tag", lang=spec.lang,
                set={"corpus_tasks": None})
    keys |= {"labels": labels} if labels else {}
    keys |= {"kappa_weights": spec.kappa_weights} if spec.kappa_weights else {}
    return write_card(data.with_suffix(".yaml"), **keys)


def preview(card: str | Path, n: int = 3) -> pd.DataFrame:
    """The first ``n`` records of a card's file as the pipeline reads them."""
    from scd.data.cards import card_records

    frame = pd.DataFrame(card_records(task_card(card))[:n])
    frame["prompt"] = frame["prompt"].str.slice(0, 80) + "…"
    return frame[[c for c in ("id", "split", "tag", "prompt", "answer") if c in frame]]


def against_builtin(result: DomainRun, task: str, card_task: str | None = None) -> pd.DataFrame:
    """Test scores of the generic path (``card_task``: the run's card task, its only one by
    default) next to the built-in task's own stages on the same data, config and seeds
    (computed or loaded): equal when the card reads the built-in task's data and the run's base LMs
    read the benchmark corpus (``corpus_tasks`` set; by default a card run's read its cards)."""
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import distill_stage
    from scd.stages.store import runs_root, runs_under

    corpus = result.cfg.corpus_tasks
    if corpus and set(corpus) & set(result.cfg.tasks):  # the cards' corpus: the built-in side reads the profile's
        corpus = get_config(result.cfg.profile).corpus_tasks
    cfg = result.cfg.replace(task_cards=(), tasks=(task,), corpus_tasks=corpus)
    if card_task is None and len(result.cfg.tasks) != 1:
        raise ValueError(f"against_builtin: the run has tasks {list(result.cfg.tasks)}; name the card_task")
    runs = result.runs()
    runs = runs[runs.task == (card_task or result.cfg.tasks[0])]
    rows = []
    for seed in cfg.seeds:
        for model in cfg.models:
            with runs_under(result.runs_root or runs_root()):
                record = (sft_stage(cfg, sft_role(model), task, seed) if is_baseline(model)
                          else distill_stage(cfg, model, task, seed))
            mine = runs[(runs.model == model) & (runs.seed == seed)].iloc[0]
            rows.append({"model": model, "seed": seed, "task file": mine.primary, f"built-in {task}": record.test.primary,
                         "equal": mine.primary == record.test.primary})
    return pd.DataFrame(rows)


def model_overrides(teacher: str | None, student: str | None) -> dict:
    """Teacher and student by local folder (``local``: never downloads) or hub id (``hub``); neither
    given: the profile's own pair."""
    if teacher is None and student is None:
        return {}
    if teacher is None or student is None:
        raise ValueError("give both a teacher and a student (or neither: the profile's own pair)")
    local = all(Path(m).expanduser().is_dir() for m in (teacher, student))
    ids = [str(user_path(m)) if local else m for m in (teacher, student)]
    return {"model_source": "local" if local else "hub", "teacher_id": ids[0], "student_id": ids[1]}


def domain_config(cards, teacher: str | None = None, student: str | None = None, methods=METHODS,
                  profile: str = "cpu", seeds=(0,), **overrides) -> Config:
    """One config for the cards' tasks: the profile, then each card's ``set`` overrides, then
    ``overrides`` (``--set``). Two cards that set one field differently are an error."""
    paths = [str(user_path(c)) for c in ([cards] if isinstance(cards, (str, Path)) else cards)]
    loaded = [load_card(p) for p in paths]
    from_cards: dict = {}
    for card in loaded:
        for key, value in card.overrides:
            if key in from_cards and from_cards[key] != value:
                raise ValueError(f"task cards disagree on {key}: {from_cards[key]!r} vs {value!r} ({card.source})")
            from_cards[key] = value
    fixed = sorted({"tasks", "task_cards", "seeds", "methods"} & (set(from_cards) | set(overrides)))
    if fixed:
        raise ValueError(f"{fixed} cannot be overridden by a card's set: or by --set: the cards give the "
                         "tasks, and run's seeds and methods arguments (--seeds, --method) the rest")
    methods = [methods] if isinstance(methods, str) else list(methods or ["all"])
    methods = list(METHODS) if methods == ["all"] else methods
    cfg = get_config(profile, **from_cards | model_overrides(teacher, student) | overrides, task_cards=paths,
                     tasks=[c.name for c in loaded], methods=methods, seeds=seeds)
    if teacher is None and student is None and "corpus_tasks" not in from_cards | overrides \
            and cfg.model_source in ("scratch", "gemma"):
        # the profile's own pair learns the user's domain from the cards' train splits: the run needs
        # neither the benchmark data nor its vocabulary (set corpus_tasks to keep the benchmark's)
        cfg = cfg.replace(corpus_tasks=cfg.tasks)
    return cfg


@dataclass(frozen=True)
class DomainRun:
    """What ``run`` wrote: the config and the results folder, with readers for its tables."""

    cfg: Config
    results_root: Path
    runs_root: Path | None = None  # its stages' folder (None: ``runs_root()`` when read)

    def runs(self) -> pd.DataFrame:
        from scd.analysis.export import load_runs

        return load_runs(self.cfg, self.results_root)

    def scores(self) -> pd.DataFrame:
        """Table 1's long form: every model and task with its interval (``scd.analysis.tables.score_table``)."""
        from scd.analysis import tables

        return tables.score_table(self.cfg, results_root=self.results_root)

    def table1(self) -> pd.DataFrame:
        from scd.analysis import tables

        return tables.table1(self.scores())

    def samples(self, model: str, seed: int | None = None, task: str | None = None) -> pd.DataFrame:
        from scd.analysis.export import load_samples

        return load_samples(self.cfg, task or self.cfg.tasks[0], model, self.cfg.seeds[0] if seed is None else seed,
                            self.results_root)


def run(cards, teacher: str | None = None, student: str | None = None, methods=("scd_aw",), profile: str = "cpu",
        seeds=(0,), out: str | Path = "scd-out", log=print, **overrides) -> DomainRun:
    """Teacher SFT with its checkpoints, the student anchor, ``methods`` and the evaluation on the
    cards' tasks; every stage compute-or-load (rerun to resume). Results -> ``<out>/results``.
    ``cards``: card files, or data files of prompt/completion rows (``task_card``); all are checked,
    every row, before the first stage. Stages (checkpoints, caches) -> ``<out>/runs`` unless
    ``SCD_RUNS_DIR`` names a folder."""
    from scd.run.reproduce import run_all
    from scd.stages.store import runs_under

    paths = [card_file(card, out) for card in check_cards(cards)]
    cfg = domain_config(paths, teacher, student, methods, profile, seeds, **overrides)
    results_root = user_path(out) / "results"
    with runs_under(user_path(out) / "runs") as runs_root:  # SCD_RUNS_DIR, if set, wins
        run_all(cfg, results_root, log)
    return DomainRun(cfg, results_root, runs_root)
