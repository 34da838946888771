"""The eight benchmark tasks (and any task card's, ``scd.taskcard``) as records ``{id, task, split, prompt, answer, tag, lang, label}``.

Splits (fixed for every run seed, so seeds vary training, never the data):
test = the official evaluation file (PubMedQA: the 500 official test PMIDs);
dev = a label-stratified slice of the rest drawn with ``DATA_SEED``; train = the remainder.
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

import numpy as np

from scd.datafiles import DataError, data_dir, data_file
from scd.entitylists import serialize_entities
from scd.tasks import LETTERS, QUOTED, TASKS, Task, get_task

DATA_SEED = 20260115
DEV_FRACTION = 0.2
DEV_MAX = 100


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


def _jmed_records(task: Task, root: Path) -> tuple[list[dict], list[dict], Counter]:
    test_path = data_file(task.test_file, root)
    test = []
    for i, row in enumerate(read_csv_rows(test_path)):
        rec = csv_record(task, row, f"{test_path} row {i + 1}")
        rec["id"], rec["question"] = f"{task.name}/{test_path.name}:{i + 1}", row["question"]
        test.append(rec)
    test_questions = {r["question"] for r in test}
    pool, seen, stats = [], set(), Counter()
    for rel in task.pool_files:
        path = data_file(rel, root)
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


def _pubmedqa_records(task: Task, root: Path) -> tuple[list[dict], list[dict], Counter]:
    pool_path, test_path = data_file(task.pool_files[0], root), data_file(task.test_file, root)
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


def stratified_take(labels: list[str], n: int, seed: int) -> np.ndarray:
    """Indices of an n-item subset whose label mix matches ``labels`` (largest remainder)."""
    rng = np.random.default_rng(seed)
    counts = Counter(labels)
    quota = {k: n * v / len(labels) for k, v in counts.items()}
    alloc = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - alloc[k]), k))[: n - sum(alloc.values())]:
        alloc[k] += 1
    chosen = []
    for k in sorted(counts):
        idx = np.flatnonzero(np.asarray(labels) == k)
        chosen.extend(rng.permutation(idx)[: alloc[k]].tolist())
    return np.sort(np.asarray(chosen, dtype=int))


def load_task(name: str, root=None, max_train: int | None = None, seed: int = DATA_SEED) -> dict[str, list[dict]]:
    """All splits of one task; ``max_train`` caps train by a seeded stratified subsample (counted)."""
    task, dev = get_task(name), None
    if task.card is not None:  # the user's file (scd.taskcard): the same rule from here on
        from scd.taskcard import card_splits

        test, dev, pool = card_splits(task.card, seed)
        stats = Counter()
    else:
        root = data_dir(root)
        test, pool, stats = (_pubmedqa_records if task.kind == "yesno" else _jmed_records)(task, root)
    if dev is None:
        n_dev = min(DEV_MAX, round(DEV_FRACTION * len(pool)))
        dev_idx = set(stratified_take([r["label"] for r in pool], n_dev, seed).tolist())
        dev = [r for i, r in enumerate(pool) if i in dev_idx]
        train = [r for i, r in enumerate(pool) if i not in dev_idx]
    else:
        train = pool
    if max_train is not None and len(train) > max_train:
        keep = stratified_take([r["label"] for r in train], max_train, seed + 1)
        stats["train_not_used"] = len(train) - max_train
        train = [train[i] for i in keep]
    splits = {"train": train, "dev": dev, "test": test}
    for split, records in splits.items():
        for r in records:
            r.update(task=name, split=split, lang=task.lang, kind=task.kind)
    check_disjoint(splits)
    splits["stats"] = dict(stats)  # type: ignore[assignment]
    return splits


def load_splits(name: str, root=None, max_train: int | None = None, max_eval: int | None = None,
                sampling: str = "natural") -> dict:
    """The task's splits as a run uses them: ``max_train`` applied (``sampling="balanced"``: drawn
    to the test set's label mix, see :func:`balanced_train`), and ``max_eval`` as a
    label-stratified sample of dev and test (the test files are sorted by label, so their first
    items would all share one answer), counted in ``stats``."""
    if sampling not in ("natural", "balanced"):
        raise ValueError(f"sampling={sampling!r}: expected natural or balanced")
    balanced = sampling == "balanced" and get_task(name).kind in ("choice", "yesno")
    splits = load_task(name, root, max_train=None if balanced else max_train)
    if balanced:
        splits["train"], repeated = balanced_train(splits["train"], [r["label"] for r in splits["test"]],
                                                   max_train or len(splits["train"]), DATA_SEED + 3)
        splits["stats"]["train_repeated"] = repeated
    for split in ("dev", "test"):
        records = splits[split]
        if max_eval and len(records) > max_eval:
            keep = stratified_take([r["label"] for r in records], max_eval, DATA_SEED + 2)
            splits[split] = [records[i] for i in keep]
            splits["stats"][f"{split}_not_used"] = len(records) - max_eval
    return splits


def balanced_train(train: list[dict], test_labels: list[str], n: int, seed: int) -> tuple[list[dict], int]:
    """``n`` train items whose label mix is the test set's (largest remainder), instead of the
    pool's skew (CRADE's pool is 85% "A", its test set 25% of each label). A label with fewer
    items than its quota has them repeated, each pass in a fresh seeded order; a repeat gets the
    id ``<id>#r<k>`` so that every train id stays unique. Returns the items (in pool order, the
    repeats after) and how many are repeats."""
    rng = np.random.default_rng(seed)
    prior = Counter(test_labels)
    by_label = {k: [i for i, r in enumerate(train) if r["label"] == k] for k in sorted(prior)}
    missing = [k for k, idx in by_label.items() if not idx]
    if missing:
        raise DataError(f"balanced sampling: the train split has no item with label(s) {missing} that the test set has")
    quota = {k: n * v / len(test_labels) for k, v in prior.items()}
    alloc = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - alloc[k]), k))[: n - sum(alloc.values())]:
        alloc[k] += 1
    first, repeats = [], []
    for k, idx in by_label.items():
        take = [int(i) for _ in range(-(-alloc[k] // len(idx))) for i in rng.permutation(idx)][: alloc[k]]
        first += take[: len(idx)]
        repeats += [dict(train[i], id=f"{train[i]['id']}#r{j // len(idx)}") for j, i in enumerate(take) if j >= len(idx)]
    return [train[i] for i in sorted(first)] + repeats, len(repeats)


def check_disjoint(splits: dict[str, list[dict]]) -> None:
    """No id and no question text may appear in two splits (or twice in one)."""
    for key in ("id", "question"):
        owner: dict[str, str] = {}
        for split in ("train", "dev", "test"):
            for r in splits[split]:
                if r[key] in owner:
                    raise DataError(f"{key} {r[key][:60]!r} appears in {owner[r[key]]} and {split}")
                owner[r[key]] = split


def passages(rec: dict) -> list[str]:
    """The domain text of a record: JMED-LLM's 「」-wrapped clinical passages (brackets kept), or
    PubMedQA's contexts."""
    if "contexts" in rec:
        return list(rec["contexts"])
    return [f"「{p}」" for p in QUOTED.findall(rec["question"])]


def main_passage(rec: dict) -> str | None:
    """The one passage a question is about: its longest 「」 span (CRADE also quotes the term it
    asks about, a span shared by many unrelated questions), or PubMedQA's joined contexts."""
    spans = [" ".join(rec["contexts"])] if "contexts" in rec else passages(rec)
    return max(spans, key=len) if spans else None


def eval_passages(root=None) -> set[str]:
    """Every passage of every task's dev and test split: text that must not enter pretraining."""
    return {p for name in TASKS for split in ("dev", "test") for r in load_task(name, root)[split] for p in passages(r)}


def corpus_texts(tasks=None, root=None, exclude_eval: bool = False) -> list[str]:
    """Train-split text of ``tasks`` (None: every task; never dev/test), deduplicated, in a stable
    order: the corpus of the tokenizer and the base LMs.

    JMED-LLM questions wrap the clinical passage in 「」 — that passage is the domain text;
    PubMedQA contributes its train contexts and long answers. Splits are disjoint by question,
    not by passage (most CRADE, RRTNM and SMDIS test passages also occur in train questions), so
    ``exclude_eval`` drops every passage that also occurs in any task's dev or test split.
    """
    banned = eval_passages(root) if exclude_eval else set()
    seen, texts = set(), []
    for name in sorted(tasks or TASKS):
        train = load_task(name, root)["train"]
        for rec in train:
            pieces = passages(rec)
            if rec["kind"] == "yesno":
                pieces.append(rec["long_answer"])
            else:  # the passage and, once each, the instruction around it
                pieces.append(QUOTED.sub("", rec["question"]))
            if rec["kind"] != "choice":
                pieces.append(rec["answer"])
            if rec is train[0] and not set(passages(rec)) & banned:
                pieces.append(rec["prompt"] + rec["answer"])
            for text in pieces:
                text = text.strip()
                if text and text not in seen and text not in banned:
                    seen.add(text)
                    texts.append(text)
    return texts
