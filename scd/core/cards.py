"""A task card: the small YAML file with which a user names their own task's data, prompt and answer
fields, kind of answer and splits. Reading and checking a card is part of defining a task (so the
config can name card tasks); reading its rows is ``scd.data.cards``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scd.core.io import DataError, sha256_of
from scd.core.tasks import LETTERS, Task, register


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
        spaced = [x for x in self.labels or () if not x or x != x.strip()]
        if spaced:  # answers are stripped before the check, so such a label could never match one
            raise DataError(f"{where}: label {spaced[0]!r} is empty or has surrounding whitespace")
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


def yes_no_text(value) -> str:
    """A yes/no label or answer as text: YAML 1.1 reads an unquoted ``yes``/``no`` as True/False
    and JSON data may hold true/false, so booleans (only they) mean "yes"/"no". Used for yes/no
    tasks only: elsewhere True is not an answer anyone wrote."""
    if type(value).__name__ in ("bool", "bool_"):  # Python's and numpy's (Parquet, datasets)
        return "yes" if value else "no"
    return str(value)


def card_from_dict(values: dict, source: str = "flags", base: Path | None = None) -> TaskCard:
    """A card from its keys; ``data`` relative to ``base`` (the card's folder). ``set``: profile
    overrides the card carries (training numbers). Labels: a list, or one comma-separated string
    whose items are stripped; for a yes/no task, YAML's booleans from unquoted yes/no are mapped
    back (``yes_no_text``). A listed label with surrounding whitespace is refused (answers are
    stripped before they are checked against the labels)."""
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
        if isinstance(labels, str):  # "A, B, C": the spaces belong to the separator
            labels = [x.strip() for x in labels.split(",")]
        values["labels"] = tuple(yes_no_text(x) if values.get("kind") == "yesno" else str(x) for x in labels)
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
        values = yaml.safe_load(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is no key
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"task card {path}: not valid UTF-8 YAML ({exc})") from exc
    if not isinstance(values, dict):
        raise DataError(f"task card {path}: expected a mapping of keys (name, data, kind, ...)")
    return card_from_dict(values, str(path), path.parent)


def as_task(card: TaskCard) -> Task:
    n_options = len(card.labels) if card.kind == "choice" else 0
    return Task(card.name, card.kind, card.lang, card.data, (), n_options=n_options,
                kappa_weights=card.kappa_weights, card=card, reader="card")


def register_card(card_or_path) -> Task:
    """Load (when given a path), check and register a card's task; returns the task."""
    card = card_or_path if isinstance(card_or_path, TaskCard) else load_card(card_or_path)
    return register(as_task(card))
