"""The benchmark files (JMED-LLM CSVs, PubMedQA JSON) read as records ``{id, prompt, answer, tag, label, question}``:
the official evaluation file is the test split (PubMedQA: the 500 official test PMIDs), the
rest of the pool is train and dev (``scd.data.splits``).
Rows of the pool whose question appears verbatim in the test file are removed (that is how
upstream built the test sets); exact duplicate questions left in the pool are kept once and
counted. Every problem in a row stops loading with the file and row named.
"""
from __future__ import annotations

import ast
import csv
import io
import json
from collections import Counter
from pathlib import Path

from scd.core.io import DataError
from scd.core.tasks import LETTERS, Task
from scd.data.entitylists import serialize_entities
from scd.data.files import data_file


# ---------------------------------------------------------------- prompts
CHOICE_HEAD = "以下の医学に関する質問に、選択肢の記号のみで答えてください。\n"
NER_TAIL = "\n回答はPythonのリスト形式で答えてください。\n答え:"
PUBMEDQA_HEAD = "Answer the biomedical research question with yes, no or maybe.\n"


def choice_prompt(question: str, options: list[str]) -> str:
    lines = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    return CHOICE_HEAD + f"質問: {question}\n選択肢:\n" + "\n".join(lines) + "\n答え:"


def ner_prompt(question: str) -> str:
    return question + NER_TAIL


def pubmedqa_prompt(question: str, contexts: list[str]) -> str:
    return PUBMEDQA_HEAD + "Context: " + " ".join(contexts) + f"\nQuestion: {question}\nAnswer:"


# ---------------------------------------------------------------- raw rows -> records
def read_csv_rows(path: Path) -> list[dict]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not valid UTF-8 at byte {exc.start} (line {line}); expected UTF-8 text") from exc
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _field(row: dict, col: str, where: str) -> str:
    value = row.get(col)
    if value is None:
        raise DataError(f"{where}: missing column {col!r}")
    return value


def csv_record(task: Task, row: dict, where: str) -> dict:
    """One CSV row -> record (without id/split); raises DataError naming ``where``."""
    question = _field(row, "question", where).strip()
    if not question:
        raise DataError(f"{where}: empty question")
    tag = _field(row, "tag", where).strip()
    answer = _field(row, "answer", where).strip()
    if task.kind == "choice":
        options = [_field(row, f"option{LETTERS[i]}", where).strip() for i in range(task.n_options)]
        while options and not options[-1]:  # RRTNM has up to 5: trailing blanks are absent options
            options.pop()
        if "" in options:
            raise DataError(f"{where}: option{LETTERS[options.index('')]} is empty but later options are not")
        valid = LETTERS[: len(options)]
        if answer not in valid:
            raise DataError(f"{where}: answer {answer!r} is not one of the options {list(valid)}")
        return {"prompt": choice_prompt(question, options), "answer": answer, "label": answer, "tag": tag}
    try:
        entities = ast.literal_eval(answer)
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"{where}: answer is not a Python list literal of strings: {answer[:80]!r}") from exc
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise DataError(f"{where}: answer must be a list of strings, got {type(entities).__name__}")
    return {"prompt": ner_prompt(question), "answer": serialize_entities(entities), "label": tag, "tag": tag,
            "question": question}


def jmed_records(task: Task, data_root: Path) -> tuple[list[dict], list[dict], Counter]:
    test_path = data_file(task.test_file, data_root)
    test = []
    for i, row in enumerate(read_csv_rows(test_path)):
        rec = csv_record(task, row, f"{test_path} row {i + 1}")
        rec["id"], rec["question"] = f"{task.name}/{test_path.name}:{i + 1}", row["question"]
        test.append(rec)
    test_questions = {r["question"] for r in test}
    pool, seen, stats = [], set(), Counter()
    for rel in task.pool_files:
        path = data_file(rel, data_root)
        for i, row in enumerate(read_csv_rows(path)):
            where = f"{path} row {i + 1}"
            if task.pool_tags is not None and _field(row, "tag", where) not in task.pool_tags:
                continue
            rec = csv_record(task, row, where)
            question = row["question"]
            if question in test_questions:
                stats["pool_in_test"] += 1
                continue
            if question in seen:
                stats["pool_duplicates_dropped"] += 1
                continue
            seen.add(question)
            rec["id"], rec["question"] = f"{task.name}/{path.name}:{i + 1}", question
            pool.append(rec)
    return test, pool, stats


def pubmedqa_records(task: Task, data_root: Path) -> tuple[list[dict], list[dict], Counter]:
    pool_path, test_path = data_file(task.pool_files[0], data_root), data_file(task.test_file, data_root)
    try:
        items, gold = json.loads(pool_path.read_bytes()), json.loads(test_path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{pool_path} / {test_path}: not valid UTF-8 JSON ({exc})") from exc
    test, pool = [], []
    for pmid, item in items.items():
        where = f"{pool_path} item {pmid}"
        question = str(item.get("QUESTION", "")).strip()
        contexts, label = item.get("CONTEXTS"), item.get("final_decision")
        if not question or not isinstance(contexts, list) or label not in ("yes", "no", "maybe"):
            raise DataError(f"{where}: expected QUESTION text, CONTEXTS list and final_decision yes/no/maybe")
        if pmid in gold and gold[pmid] != label:
            raise DataError(f"{test_path} PMID {pmid}: label {gold[pmid]!r} disagrees with {label!r} in {pool_path}")
        rec = {"id": f"pubmedqa/{pmid}", "prompt": pubmedqa_prompt(question, contexts), "answer": label,
               "label": label, "tag": "pubmedqa", "question": question,
               "long_answer": item.get("LONG_ANSWER", ""), "contexts": contexts}
        (test if pmid in gold else pool).append(rec)
    missing = set(gold) - set(items)
    if missing:
        raise DataError(f"{test_path}: {len(missing)} test PMIDs are not in {pool_path}, e.g. {sorted(missing)[:3]}")
    return test, pool, Counter()


