"""Atomic file writes and config hashing: a killed run never leaves a file that looks complete."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def quiet() -> bool:
    """SCD_QUIET=1 silences progress bars (tests, CI logs)."""
    return os.environ.get("SCD_QUIET") == "1"


def project_path(name: str) -> Path:
    """``name`` inside the checkout this package runs from (so notebooks, whose working folder
    is ``notebooks/``, and the CLI agree), else inside the current folder."""
    checkout = Path(__file__).resolve().parents[2]  # scd/core/io.py -> the checkout
    return checkout / name if (checkout / "pyproject.toml").is_file() else Path(name)


def user_path(path: str | os.PathLike) -> Path:
    """A path as the user meant it: ``~`` expanded, relative to the folder the command ran in."""
    return Path(path).expanduser().resolve()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


def write_table(stem: str | os.PathLike, frame: pd.DataFrame, floatfmt: str = ".3f") -> list[Path]:
    """One table, three formats a paper and a README need: CSV, markdown and LaTeX."""
    stem = Path(stem)
    md = frame.to_markdown(index=False, floatfmt=floatfmt)
    tex = frame.to_latex(index=False, float_format=lambda v: format(v, floatfmt))
    return [
        write_csv(stem.with_suffix(".csv"), frame),
        atomic_write_text(stem.with_suffix(".md"), md + "\n"),
        atomic_write_text(stem.with_suffix(".tex"), tex),
    ]


def json_form(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, dataclasses dicts)."""
    return json.loads(json.dumps(obj, default=_jsonable, ensure_ascii=False))


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able config: the identity of a run folder."""
    blob = json.dumps(obj, sort_keys=True, default=_jsonable, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class DataError(ValueError):
    """Bad or missing benchmark data; the message names the file (and row) and what was expected."""


_SUMS: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256: every stage key asks again


def sha256_of(path: Path) -> str:
    stat = os.stat(path)
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _SUMS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SUMS[memo] = digest.hexdigest()
    return _SUMS[memo]
