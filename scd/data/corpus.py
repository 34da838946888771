"""The domain text of the train splits: what the tokenizer and the base LMs learn from."""
from __future__ import annotations

from scd.core.tasks import QUOTED, TASKS, get_task
from scd.data.splits import load_task

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


def eval_passages(data_root=None, dev_sampling: str = "stratified") -> set[str]:
    """Every passage of every task's dev and test split: text that must not enter pretraining."""
    return {p for name in TASKS for split in ("dev", "test")
            for r in load_task(name, data_root, dev_sampling=dev_sampling)[split] for p in passages(r)}


def card_texts(tasks, exclude_eval: bool = False) -> list[str]:
    """Train-split prompts and answers of task-card tasks, deduplicated, in a stable order: a card
    run's own corpus, so its tokenizer and base LMs learn the user's domain and the run needs no
    benchmark data. ``exclude_eval`` drops any text that is also a dev or test prompt."""
    splits = {name: load_task(name) for name in sorted(tasks)}
    banned = {r["prompt"] for s in splits.values() for split in ("dev", "test") for r in s[split]} if exclude_eval \
        else set()
    texts = [t.strip() for s in splits.values() for r in s["train"] for t in (r["prompt"], r["answer"])]
    return [t for t in dict.fromkeys(texts) if t and t not in banned]


def corpus_texts(tasks=None, data_root=None, exclude_eval: bool = False, dev_sampling: str = "stratified") -> list[str]:
    """Train-split text of ``tasks`` (None: every task; never dev/test), deduplicated, in a stable
    order: the corpus of the tokenizer and the base LMs.

    JMED-LLM questions wrap the clinical passage in 「」 — that passage is the domain text;
    PubMedQA contributes its train contexts and long answers. Splits are disjoint by question,
    not by passage (most CRADE, RRTNM and SMDIS test passages also occur in train questions), so
    ``exclude_eval`` drops every passage that also occurs in any task's dev or test split.
    Task-card tasks contribute their own train text (:func:`card_texts`), after the built-in ones.
    """
    cards = sorted(name for name in tasks or () if get_task(name).card is not None)
    if cards:
        builtin = [name for name in tasks if name not in cards]
        return (corpus_texts(builtin, data_root, exclude_eval, dev_sampling) if builtin else []) + \
            card_texts(cards, exclude_eval)
    banned = eval_passages(data_root, dev_sampling) if exclude_eval else set()
    seen, texts = set(), []
    for name in sorted(tasks or TASKS):
        train = load_task(name, data_root, dev_sampling=dev_sampling)["train"]
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
