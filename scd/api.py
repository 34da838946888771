"""SCD+AW on your own domain: a task card, a teacher and a student, one call.

    from scd import api as domain
    card = domain.write_card("my_task.yaml", name="my_task", data="my_task.jsonl", kind="choice",
                             prompt="question", answer="label", labels=["A", "B", "C", "D"])
    run = domain.run(card, teacher="path/to/teacher", student="path/to/student", methods=["scd_aw"],
                     profile="cpu", out="scd-my_task")
    run.table1()                 # Table 1's rows: teacher, student, SCD+AW, the n-gram reference
    run.samples("scd_aw")        # per-item test rows (prediction, credit, gold loss)

Everything runs through the same stages as the built-in tasks (compute-or-load, resumable), and
writes the same ``results/<profile>/`` files, so notebooks 04–06 open it with
``results_dir=<out>/results`` and ``task_cards=<card>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scd.core.config import Config, get_config
from scd.core.io import user_path
from scd.core.methods import METHODS, is_baseline, sft_role
from scd.core.cards import card_from_dict, load_card


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
    keys = dict(name=name, data=data.name, kind=spec.kind, id="id", split="split", tag="tag", lang=spec.lang)
    keys |= {"labels": labels} if labels else {}
    keys |= {"kappa_weights": spec.kappa_weights} if spec.kappa_weights else {}
    return write_card(data.with_suffix(".yaml"), **keys)


def preview(card: str | Path, n: int = 3) -> pd.DataFrame:
    """The first ``n`` records of a card's file as the pipeline reads them."""
    from scd.data.cards import card_records

    frame = pd.DataFrame(card_records(load_card(card))[:n])
    frame["prompt"] = frame["prompt"].str.slice(0, 80) + "…"
    return frame[[c for c in ("id", "split", "tag", "prompt", "answer") if c in frame]]


def against_builtin(result: DomainRun, task: str, card_task: str | None = None) -> pd.DataFrame:
    """Test scores of the generic path (``card_task``: the run's card task, its only one by
    default) next to the built-in task's own stages on the same data, config and seeds
    (computed or loaded): equal when the card reads the built-in task's data."""
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import distill_stage

    cfg = result.cfg.replace(task_cards=(), tasks=(task,))
    if card_task is None and len(result.cfg.tasks) != 1:
        raise ValueError(f"against_builtin: the run has tasks {list(result.cfg.tasks)}; name the card_task")
    runs = result.runs()
    runs = runs[runs.task == (card_task or result.cfg.tasks[0])]
    rows = []
    for seed in cfg.seeds:
        for model in cfg.models:
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
    return get_config(profile, **from_cards | model_overrides(teacher, student) | overrides, task_cards=paths,
                      tasks=[c.name for c in loaded], methods=methods, seeds=seeds)


@dataclass(frozen=True)
class DomainRun:
    """What ``run`` wrote: the config and the results folder, with readers for its tables."""

    cfg: Config
    results_root: Path

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
    cards' tasks; every stage compute-or-load (rerun to resume). Results -> ``<out>/results``."""
    from scd.run.reproduce import run_all

    cfg = domain_config(cards, teacher, student, methods, profile, seeds, **overrides)
    results_root = user_path(out) / "results"
    run_all(cfg, results_root, log)
    return DomainRun(cfg, results_root)
