"""The raw rows of a task file, whatever its format, each with where it came from.

Every row carries ``__row`` (a number unique across the whole file, the default id) and
``__where`` (how a message names it: ``line 7``, ``row 7``, ``split 'dev' row 7``), so that
every later check can say which row of which file is wrong.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from scd.core.io import DataError


def _numbered(rows, origin, split: str | None = None, start: int = 0) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        where = f"split {split!r} row {i + 1}" if split is not None else f"row {i + 1}"
        bad = [k for k in row if not isinstance(k, str)]
        if bad:
            raise DataError(f"{origin} {where}: column names must be text, got {bad!r}")
        out.append(dict(row) | {"__row": start + i + 1, "__where": where}
                   | ({"__split": split} if split is not None else {}))
    return out


def _json_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")  # "UTF-8 with BOM" editors write a mark no parser wants
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):  # one JSON array of objects
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from exc
        numbered = list(enumerate(items))
        unit = "item"
    else:
        numbered = []
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                numbered.append((i, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {i + 1}: not valid JSON ({exc.msg})") from exc
        unit = "line"
    rows = []
    for i, row in numbered:
        if not isinstance(row, dict):
            raise DataError(f"{path} {unit} {i + 1}: expected a JSON object, got {type(row).__name__}")
        rows.append(row | {"__row": i + 1, "__where": f"{unit} {i + 1}"})
    return rows


def _csv(path: Path) -> list[dict]:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 at byte {exc.start}") from exc
    rows = list(csv.DictReader(io.StringIO(text, newline=""), restkey="__extra"))
    for i, row in enumerate(rows):
        if "__extra" in row:
            raise DataError(f"{path} row {i + 1}: {len(row['__extra'])} more field(s) than the header's "
                            f"{len(row) - 1} (an unquoted comma?)")
    return _numbered(rows, path)


def read_rows(fmt: str, data: str, source: str, revision: str | None = None) -> list[dict]:
    """The rows of ``data`` (a file, a ``datasets`` folder or ``hub:<id>``) as dicts."""
    path = Path(data)
    if fmt != "hub" and not path.exists():
        raise DataError(f"task card {source}: data {path} does not exist")
    if fmt == "jsonl":
        return _json_lines(path)
    if fmt == "csv":
        return _csv(path)
    if fmt == "parquet":
        import pandas as pd

        return _numbered(pd.read_parquet(path).to_dict("records"), path)
    import datasets

    loaded = (datasets.load_from_disk(str(path)) if fmt == "disk"
              else datasets.load_dataset(data[len("hub:"):], revision=revision))
    if isinstance(loaded, datasets.DatasetDict):  # its splits become the split column
        rows = []
        for name, part in loaded.items():
            rows += _numbered(part, data, name, start=len(rows))
        return rows
    return _numbered(loaded, data)
