"""A task from the user's own file: a small card (YAML) names the data, its prompt and answer
fields, the kind of answer and the splits; the rows become the records the built-in tasks give,
so every stage, table and notebook runs on them unchanged. Data: JSONL, CSV, Parquet, a
``datasets`` folder (``save_to_disk``) or a hub dataset id (``hub:<id>``, where a network exists).
Splits: a column, or the built-in rule (a seeded, label-stratified test slice, then dev from the
rest). Every problem stops loading with the card or the data file and the row named.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from scd.core.cards import SPLIT_NAMES, TaskCard, yes_no_text
from scd.core.io import DataError
from scd.data.entitylists import serialize_entities
from scd.data.rows import read_rows
from scd.data.sampling import stratified_take


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
    """(answer text as the model writes it, label for stratification or None). The answer is
    stripped before it is checked against the labels; a yes/no task reads booleans as yes/no."""
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
    text = (yes_no_text(raw) if card.kind == "yesno" else str(raw)).strip()
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

    from scd.core.io import write_csv

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
