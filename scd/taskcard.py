"""A task from the user's own file: a small card (YAML) names the data, its prompt and answer
fields, the kind of answer and the splits; the rows become the records the built-in tasks give,
so every stage, table and notebook runs on them unchanged. Data: JSONL, CSV, Parquet, a
``datasets`` folder (``save_to_disk``) or a hub dataset id (``hub:<id>``, where a network exists).
Splits: a column, or the built-in rule (a seeded, label-stratified test slice, then dev from the
rest). Every problem stops loading with the card or the data file and the row named.
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scd.datafiles import DataError, sha256_of
from scd.taskrows import read_rows
from scd.tasks import LETTERS, Task, register

KINDS = ("choice", "yesno", "ner", "text")
FORMATS = ("jsonl", "csv", "parquet", "disk", "hub")
SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "test": "test"}
YES_NO_MAYBE = ("yes", "no", "maybe")


@dataclass(frozen=True)
class TaskCard:
    """What a task file holds and how to read it. ``source``: the card file (or "flags")."""

    name: str
    data: str
    kind: str
    prompt: str = "prompt"
    answer: str = "answer"
    prompt_template: str | None = None
    labels: tuple[str, ...] | None = None
    id: str | None = None
    split: str | None = None
    tag: str | None = None
    format: str | None = None
    revision: str | None = None
    test_fraction: float = 0.2
    lang: str = "en"
    kappa_weights: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()
    source: str = "flags"

    def __post_init__(self):
        where = f"task card {self.source}"
        if not self.name or not str(self.name).replace("_", "").replace("-", "").isalnum():
            raise DataError(f"{where}: name {self.name!r} must be letters, digits, '_' or '-'")
        if self.kind not in KINDS:
            raise DataError(f"{where}: kind {self.kind!r}; expected one of {list(KINDS)}")
        fmt = self.resolved_format()
        if fmt not in FORMATS:
            raise DataError(f"{where}: format {fmt!r}; expected one of {list(FORMATS)}")
        if self.kind == "choice":
            letters = "".join(self.labels or ())
            if len(letters) < 2 or not LETTERS.startswith(letters):
                raise DataError(f"{where}: a choice task needs labels, the option letters in order from A "
                                f"(at most {LETTERS}), e.g. [A, B, C, D]; got {self.labels!r}")
        if self.kind == "yesno" and not set(self.labels or YES_NO_MAYBE) <= set(YES_NO_MAYBE):
            raise DataError(f"{where}: yes/no labels {self.labels!r} must be some of {list(YES_NO_MAYBE)}")
        if self.kappa_weights not in (None, "linear", "quadratic") or (self.kappa_weights and self.kind != "choice"):
            raise DataError(f"{where}: kappa_weights {self.kappa_weights!r}: linear or quadratic, choice tasks only")
        if self.split is None and not 0.0 < self.test_fraction < 1.0:
            raise DataError(f"{where}: test_fraction {self.test_fraction} must lie between 0 and 1")

    def resolved_format(self) -> str:
        if self.format:
            return self.format
        if self.data.startswith("hub:"):
            return "hub"
        path = Path(self.data)
        return "disk" if path.is_dir() else {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv",
                                             ".parquet": "parquet"}.get(path.suffix.lower(), path.suffix)

    @property
    def label_set(self) -> tuple[str, ...] | None:
        if self.kind == "choice":
            return tuple(self.labels)
        return tuple(self.labels or YES_NO_MAYBE) if self.kind == "yesno" else None

    def checksum(self) -> dict[str, str]:
        """The card's fields and the data's content: part of the key of every stage reading them."""
        card = json.dumps({k: v for k, v in asdict(self).items() if k != "source"}, sort_keys=True, default=str)
        fmt = self.resolved_format()
        if fmt == "hub":  # the id and the revision asked for (a moving branch is the user's call)
            data = f"{self.data}@{self.revision}"
        else:
            path = Path(self.data)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            data = ",".join(sha256_of(p) for p in files)
        return {f"card:{self.name}": hashlib.sha256(card.encode()).hexdigest(),
                f"data:{self.name}": hashlib.sha256(data.encode()).hexdigest()}


CARD_KEYS = tuple(f.name for f in fields(TaskCard) if f.name not in ("overrides", "source")) + ("set",)


def card_from_dict(values: dict, source: str = "flags", base: Path | None = None) -> TaskCard:
    """A card from its keys; ``data`` relative to ``base`` (the card's folder). ``set``: profile
    overrides the card carries (training numbers)."""
    unknown = sorted(set(values) - set(CARD_KEYS))
    if unknown:
        raise DataError(f"task card {source}: unknown key(s) {unknown}; expected some of {list(CARD_KEYS)}")
    missing = [k for k in ("name", "data", "kind") if not values.get(k)]
    if missing:
        raise DataError(f"task card {source}: missing {missing} (every card names its task, data file and kind)")
    values = dict(values)
    data = str(values["data"])
    if not data.startswith("hub:") and base is not None and not Path(data).is_absolute():
        data = str((base / data).resolve())
    values["data"] = data
    if values.get("labels") is not None:
        labels = values["labels"]
        values["labels"] = tuple(str(x) for x in (labels.split(",") if isinstance(labels, str) else labels))
    overrides = values.pop("set", None) or {}
    if not isinstance(overrides, dict):
        raise DataError(f"task card {source}: set must map config fields to values, got {overrides!r}")
    return TaskCard(**values, overrides=tuple(sorted(overrides.items())), source=source)


def load_card(path: str | Path) -> TaskCard:
    """A card file (YAML or JSON)."""
    import yaml

    path = Path(path).resolve()
    if not path.is_file():
        raise DataError(f"task card {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"task card {path}: not valid UTF-8 YAML ({exc})") from exc
    if not isinstance(values, dict):
        raise DataError(f"task card {path}: expected a mapping of keys (name, data, kind, ...)")
    return card_from_dict(values, str(path), path.parent)


def as_task(card: TaskCard) -> Task:
    n_options = len(card.labels) if card.kind == "choice" else 0
    return Task(card.name, card.kind, card.lang, card.data, (), n_options=n_options,
                kappa_weights=card.kappa_weights, card=card)


def register_card(card_or_path) -> Task:
    """Load (when given a path), check and register a card's task; returns the task."""
    card = card_or_path if isinstance(card_or_path, TaskCard) else load_card(card_or_path)
    return register(as_task(card))


# ---------------------------------------------------------------- checking rows
def _value(row: dict, name: str, where: str):
    if name not in row:
        present = sorted(k for k in row if not k.startswith("__"))
        raise DataError(f"{where}: missing field {name!r} (the row has {present})")
    value = row[name]
    if value is None or (isinstance(value, float) and value != value):
        raise DataError(f"{where}: field {name!r} is empty")
    return value


def _answer(card: TaskCard, raw, where: str) -> tuple[str, str | None]:
    """(answer text as the model writes it, label for stratification or None)."""
    from scd.entitylists import serialize_entities

    if card.kind == "ner":
        entities = raw
        if isinstance(raw, str):
            try:
                entities = json.loads(raw)
            except json.JSONDecodeError:
                try:
                    entities = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    raise DataError(f"{where}: answer {raw[:80]!r} is not a list of strings (JSON or Python)") from None
        if hasattr(entities, "tolist"):  # parquet lists come back as arrays
            entities = entities.tolist()
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise DataError(f"{where}: answer must be a list of strings, got {raw!r:.80}")
        return serialize_entities(entities), None
    text = str(raw).strip()
    if not text:
        raise DataError(f"{where}: empty answer")
    if card.kind == "yesno":
        text = text.lower()
    if card.label_set is not None and text not in card.label_set:
        raise DataError(f"{where}: answer {text!r} is not one of the declared labels {list(card.label_set)}")
    return text, (text if card.label_set is not None else None)


def card_records(card: TaskCard) -> list[dict]:
    """Every row as a record ``{id, prompt, answer, label, tag, question, split?}``, checked."""
    records, ids, prompts = [], {}, {}
    for row in read_rows(card.resolved_format(), card.data, card.source, card.revision):
        where = f"{card.data} {row['__where']}"
        if card.prompt_template is not None:
            try:
                prompt = card.prompt_template.format(**{k: v for k, v in row.items() if not k.startswith("__")})
            except KeyError as exc:
                raise DataError(f"{where}: missing field {exc.args[0]!r} named in prompt_template") from None
            except (IndexError, ValueError) as exc:
                raise DataError(f"task card {card.source}: prompt_template cannot be filled ({exc}); "
                                "fields are written {name}, literal braces {{ }}") from None
        else:
            prompt = str(_value(row, card.prompt, where))
        if not prompt.strip():
            raise DataError(f"{where}: empty prompt")
        if prompt in prompts:  # the same question twice would sit in two splits or count twice
            raise DataError(f"{where}: the same prompt as {prompts[prompt]}")
        prompts[prompt] = row["__where"]
        answer, label = _answer(card, _value(row, card.answer, where), where)
        rid = str(_value(row, card.id, where)) if card.id else str(row["__row"])
        if rid in ids:
            raise DataError(f"{where}: duplicate id {rid!r} (also {ids[rid]})")
        ids[rid] = row["__where"]
        tag = str(_value(row, card.tag, where)) if card.tag else card.name
        rec = {"id": f"{card.name}/{rid}", "prompt": prompt, "answer": answer, "label": label or tag, "tag": tag,
               "question": prompt}
        split = row.get("__split") if card.split is None else str(_value(row, card.split, where)).strip().lower()
        if split is not None:
            if split not in SPLIT_NAMES:
                raise DataError(f"{where}: split {split!r}; expected one of {sorted(SPLIT_NAMES)}")
            rec["split"] = SPLIT_NAMES[split]
        records.append(rec)
    if not records:
        raise DataError(f"{card.data}: no rows")
    return records


def card_splits(card: TaskCard, seed: int) -> tuple[list[dict], list[dict] | None, list[dict]]:
    """(test, dev or None when the rule draws it, pool): from the split column when the data has
    one, else a seeded label-stratified test slice of ``test_fraction``."""
    from scd.data import stratified_take

    records = card_records(card)
    if any("split" in r for r in records):
        by = {s: [r for r in records if r.get("split") == s] for s in ("train", "dev", "test")}
        given = f"the split column {card.split!r}" if card.split else "the dataset's split names"
        for s in ("train", "test"):
            if not by[s]:
                raise DataError(f"{card.data}: {given} give(s) no {s} rows")
        return by["test"], by["dev"] or None, by["train"]
    n_test = max(1, round(card.test_fraction * len(records)))
    chosen = set(stratified_take([r["label"] for r in records], n_test, seed + 4).tolist())
    return ([r for i, r in enumerate(records) if i in chosen], None,
            [r for i, r in enumerate(records) if i not in chosen])


def write_task_file(records: list[dict], path: str | Path, fields_=("id", "prompt", "answer", "tag", "split")) -> Path:
    """Records as a JSONL, CSV or Parquet task file (by suffix): how a built-in task is exported
    to try the generic path on it (notebook 9, tests)."""
    import pandas as pd

    from scd.io import write_csv

    path, rows = Path(path), [{k: r[k] for k in fields_ if k in r} for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        write_csv(path, pd.DataFrame(rows))
        return path
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    else:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path
