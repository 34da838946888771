"""What each stage returns and stores as its ``done.json``: typed, so a reader names attributes
instead of string keys and a record from another version fails loudly, naming its file.

Plain dataclasses with no dependencies. ``to_json``/``from_json`` are exact inverses; a field
whose type is a record (or a list of records) is read as one.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path


class RecordError(ValueError):
    """A ``done.json`` that does not hold the record its stage writes."""


@dataclass(frozen=True, kw_only=True)
class Record:
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if not isinstance(data, dict) or not required <= set(data) or not set(data) <= names:
            have = set(data) if isinstance(data, dict) else set()
            raise RecordError(f"not a {cls.__name__}: missing {sorted(required - have)}, "
                              f"unexpected {sorted(have - names)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _decode(hints[k], v) for k, v in data.items()})

    @classmethod
    def read(cls, path: str | Path):
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except RecordError as err:
            raise RecordError(f"{path}: {err} (written by another version? delete its folder to recompute)") from None


def _decode(tp, value):
    args = typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value)
    if typing.get_origin(tp) is list and args and isinstance(args[0], type) and issubclass(args[0], Record):
        return [args[0].from_json(v) for v in value]
    inner = [a for a in args if a is not type(None)]
    if value is not None and len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], Record):
        return inner[0].from_json(value)  # Optional[Record]
    return value


@dataclass(frozen=True, kw_only=True)
class Scores(Record):
    """One split's scores (``scd.scoring.metrics.score`` plus the mean gold loss); the metrics a task
    kind does not have are None."""

    n: int
    n_unparsed: int
    primary: float
    selection: float
    gold_loss: float
    accuracy: float | None = None
    kappa: float | None = None
    macro_f1: float | None = None
    exact_f1: float | None = None
    partial_f1: float | None = None
    partial_f1_upstream: float | None = None  # JMED-LLM's code, comparable with the paper (scd.scoring.metrics)
    partial_f1_lenient: float | None = None  # NER: complete items of a cut list kept (secondary)
    n_unparsed_lenient: int | None = None
    n_repeat_cut: int | None = None  # NER lists ended before a repeated item (config stop_at_repeat)
    exact_match: float | None = None  # free text (task cards of kind "text")
    token_f1: float | None = None

    def named(self) -> dict[str, float]:
        """The task's own metrics (the ones it has), for a results row."""
        return {k: v for k in ("accuracy", "kappa", "macro_f1", "exact_f1", "partial_f1", "partial_f1_upstream",
                               "partial_f1_lenient", "n_unparsed_lenient", "n_repeat_cut", "exact_match", "token_f1")
                if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, kw_only=True)
class TokenizerRecord(Record):
    key: dict
    documents: int
    chars: int
    tokenizer_hash: str


@dataclass(frozen=True, kw_only=True)
class BaseRecord(Record):
    """A base LM in ``<stage>/model``: every source (scratch, gemma, hub) leaves this."""

    key: dict
    params: int
    tokenizer_hash: str
    wall_s: float | None = None
    world_size: int = 1
    details: dict = field(default_factory=dict)  # how it was made: pretraining curve, pruning, ...


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Record):
    checkpoint: str
    index: int
    step: int
    path: str
    epoch: float
    dev: Scores


@dataclass(frozen=True, kw_only=True)
class SFTRecord(Record):
    """A teacher (N checkpoints, best on dev) or a student SFT (best on dev, plus AW anchor losses)."""

    key: dict
    role: str
    task: str
    seed: int
    path: str
    train_s: float
    eval_s: float
    world_size: int
    tokenizer_hash: str
    trajectory: list[Checkpoint]
    best: str
    best_path: str
    test: Scores
    max_new_tokens: int
    n: dict
    prompts_truncated: int
    data_stats: dict

    @property
    def best_index(self) -> int:
        return [t.checkpoint for t in self.trajectory].index(self.best)

    @property
    def anchor_path(self) -> Path:
        return Path(self.path) / "anchor.csv"


@dataclass(frozen=True, kw_only=True)
class CacheRecord(Record):
    key: dict
    kl_from_best: list[float]
    build_s: float
    probe_tokens: int
    world_size: int


@dataclass(frozen=True, kw_only=True)
class StageRecord(Record):
    """One distillation stage: the checkpoint it followed, why, and its dev scores."""

    stage: int
    checkpoint: str
    checkpoint_index: int
    candidate_scores: list[float] | None
    kl_from_best: list[float]
    # SCD's student term KL(p_student||p_c) per candidate (None without a probe, and in records
    # written before it was kept: scd.analysis.selection derives it where that is exact)
    kl_student: list[float] | None = None
    weights: dict  # summary statistics of the per-sample weights
    select_s: float
    train_s: float
    eval_s: float
    steps: int
    train_loss: float
    dev: Scores


@dataclass(frozen=True, kw_only=True)
class DistillRecord(Record):
    key: dict
    method: str
    task: str
    seed: int
    path: str
    stages: list[StageRecord]
    best: str
    test: Scores
    cache: CacheRecord
    train_s: float
    select_s: float
    world_size: int


def best_of(candidates: list, dev, order) -> object:
    """The candidate with the best dev selection score; ties go to the lower gold loss, then the
    later candidate. One rule for the teacher's checkpoints and the distillation stages."""
    return max(candidates, key=lambda c: (dev(c).selection, -dev(c).gold_loss, order(c)))
