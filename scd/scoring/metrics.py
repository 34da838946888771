"""Turn generated text into predictions and score them as JMED-LLM / PubMedQA define.

The parsing rules mirror JMED-LLM's reference evaluator so that our numbers are
comparable with published ones; the few places where we deliberately differ
(partial-match F1, empty gold lists, kappa label order) are documented on the
functions concerned.
"""

from __future__ import annotations

import math
import re
import warnings

from sklearn.metrics import cohen_kappa_score, f1_score

from scd.data.entitylists import parse_entities, parse_entities_lenient
from scd.scoring.freetext import exact_match, parse_text, token_f1
from scd.core.tasks import LETTERS as CHOICE_LETTERS

UNPARSED = "None"
YES_NO_MAYBE = ("yes", "no", "maybe")
KINDS = ("choice", "yesno", "ner", "text")

_YNM_RE = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)


def parse_choice(text: str) -> str | None:
    """First character of ``text`` that is a choice letter (JMED-LLM's rule).

    The rule is intentionally naive: "Answer: B" parses as "A" because the "A"
    of "Answer" comes first. Reproducing upstream matters more than being clever.
    """
    for ch in text:
        if ch in CHOICE_LETTERS:
            return ch
    return None


def parse_yes_no_maybe(text: str) -> str | None:
    """Earliest whole-word yes/no/maybe, case-insensitive, lower-cased."""
    m = _YNM_RE.search(text)
    return m.group(1).lower() if m else None


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def exact_f1(gold: list[str], pred: list[str]) -> float:
    """Per-sample F1 on exact string match, duplicates removed.

    Empty gold: 1.0 if the prediction is also empty, else 0.0. Upstream divides
    by zero here; rewarding a correct "no entities" answer is the natural fix.
    """
    g, p = set(gold), set(pred)
    if not g:
        return 1.0 if not p else 0.0
    if not p:
        return 0.0
    tp = len(g & p)
    return _f1(tp / len(p), tp / len(g))


def _overlaps(a: str, b: str) -> bool:
    # An empty string is a substring of everything; letting "" match would
    # reward degenerate output, so it only matches another "".
    if not a or not b:
        return a == b
    return a in b or b in a


def partial_f1(gold: list[str], pred: list[str]) -> float:
    """Per-sample F1 where entities match if one is a substring of the other.

    This is the definition JMED-LLM describes ("部分一致"), but deliberately
    NOT what its code computes: upstream tests set membership (i.e. exact
    match) and uses the matched-gold count as the numerator of both precision
    and recall. We count matched gold for recall and matched predictions for
    precision, so e.g. two predictions inside one gold entity give precision 1.
    Empty gold is handled as in :func:`exact_f1`.
    """
    g, p = set(gold), set(pred)
    if not g:
        return 1.0 if not p else 0.0
    if not p:
        return 0.0
    matched_gold = sum(any(_overlaps(x, y) for y in p) for x in g)
    matched_pred = sum(any(_overlaps(y, x) for x in g) for y in p)
    return _f1(matched_pred / len(p), matched_gold / len(g))


def partial_f1_upstream(gold: list[str], pred: list[str]) -> float:
    """Per-sample "partial F1" as JMED-LLM's code computes it (``partial_f1_score`` in its
    ``src/utils.py`` at the pinned commit), kept because the published numbers, and presumably
    the paper's, come from it. Its loop tests set membership, so a sample scores only when some
    prediction equals some gold entity exactly, and then every gold entity counts as matched:
    recall 1, precision |G|/|P|, F1 = 2|G|/(|G|+|P|), above 1 when fewer distinct entities are
    predicted than there are gold ones (gold {a, b, c}, prediction {a}: 1.5). Empty gold is
    handled as in :func:`exact_f1` (upstream divides by zero there)."""
    g, p = set(gold), set(pred)
    if not g:
        return 1.0 if not p else 0.0
    if not g & p:
        return 0.0
    return _f1(len(g) / len(p), 1.0)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def parse_prediction(kind: str, text: str):
    """Dispatch to the parser for ``kind``; ``None`` means unparseable."""
    _check_kind(kind)
    if kind == "choice":
        return parse_choice(text)
    if kind == "yesno":
        return parse_yes_no_maybe(text)
    if kind == "text":
        return parse_text(text)
    return parse_entities(text)


def per_sample_correct(kind: str, gold, pred) -> float:
    """Per-sample credit, used for paired tests and error analysis.

    For NER it is the sample's partial-match F1, for free text its token F1: its mean is the score.

    Unparseable (``None``) predictions get 0 for choice/yes-no and are treated
    as the empty list for NER (so they still score 1.0 when gold is empty).
    """
    _check_kind(kind)
    if kind == "ner":
        return partial_f1(gold_entities(gold), pred if pred is not None else [])
    if kind == "text":
        return token_f1(gold, pred)
    return 1.0 if pred is not None and pred == gold else 0.0


def gold_entities(gold) -> list[str]:
    """Accept gold as a list or in its serialized form straight from the data."""
    if isinstance(gold, str):
        parsed = parse_entities(gold)
        if parsed is None:
            raise ValueError(f"gold entity list is not a list of strings: {gold!r}")
        return parsed
    if isinstance(gold, (list, tuple)) and all(isinstance(e, str) for e in gold):
        return list(gold)
    raise ValueError(f"gold entity list is not a list of strings: {gold!r}")


def _kappa(golds: list[str], preds: list[str], weights: str | None) -> float:
    """Cohen's kappa with an explicit label order.

    Labels are the contiguous letters from "A" up to the highest letter seen,
    then the UNPARSED sentinel last. Contiguity keeps linear weights equal to
    the true ordinal distance even if a middle letter never occurs (sklearn's
    default, the sorted labels present, would shrink that distance). Putting
    the sentinel last matches upstream, where "None" sorts after "A".."F"; it
    makes an unparsed answer count as one step beyond the highest letter under
    linear weights. If everything is one identical label kappa is undefined
    and we return NaN (sklearn's value) instead of raising.
    """
    seen = [c for c in CHOICE_LETTERS if c in set(golds) | set(preds)]
    top = CHOICE_LETTERS.index(seen[-1]) if seen else 0
    labels = list(CHOICE_LETTERS[: top + 1]) + [UNPARSED]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(
            golds, preds, labels=labels, weights=weights, replace_undefined_by=math.nan
        )
    return float(k)


def score(kind: str, golds: list, texts: list[str], weights: str | None = None) -> dict:
    """Parse ``texts`` and compute the benchmark's metrics for one task.

    ``primary`` is the headline test score (accuracy; partial F1 for NER; token F1 for text);
    ``selection`` is what checkpoints are chosen by on dev (kappa, macro-F1, partial F1, token F1).

    ``weights`` is only meaningful for choice tasks ("linear" for crade).
    Unparseable outputs are counted in ``n_unparsed`` and scored as wrong
    (choice/yes-no) or as an empty entity list (NER).
    """
    _check_kind(kind)
    golds, texts = list(golds), list(texts)
    if len(golds) != len(texts):
        raise ValueError(f"len(golds)={len(golds)} != len(texts)={len(texts)}")
    if not golds:
        raise ValueError("cannot score an empty set of samples")
    if weights is not None and kind != "choice":
        raise ValueError(f"weights={weights!r} only applies to kind='choice'")

    preds = [parse_prediction(kind, t) for t in texts]
    n = len(golds)
    out: dict = {"n": n, "n_unparsed": sum(p is None for p in preds)}

    if kind == "ner":
        gold_lists = [gold_entities(g) for g in golds]
        pred_lists = [p if p is not None else [] for p in preds]
        out["exact_f1"] = sum(map(exact_f1, gold_lists, pred_lists)) / n
        out["partial_f1"] = sum(map(partial_f1, gold_lists, pred_lists)) / n
        out["partial_f1_upstream"] = sum(map(partial_f1_upstream, gold_lists, pred_lists)) / n
        lenient = [parse_entities_lenient(t) for t in texts]
        out["n_unparsed_lenient"] = sum(p is None for p in lenient)
        out["partial_f1_lenient"] = sum(partial_f1(g, p or []) for g, p in zip(gold_lists, lenient)) / n
        out["primary"] = out["selection"] = out["partial_f1"]
    elif kind == "text":
        out["exact_match"] = sum(map(exact_match, golds, preds)) / n
        out["token_f1"] = sum(map(token_f1, golds, preds)) / n
        out["primary"] = out["selection"] = out["token_f1"]
    else:
        valid = CHOICE_LETTERS if kind == "choice" else YES_NO_MAYBE
        for i, g in enumerate(golds):
            if not isinstance(g, str) or g not in valid or (kind == "choice" and len(g) != 1):
                raise ValueError(f"gold[{i}]={g!r} is not one of {list(valid)}")
        filled = [p if p is not None else UNPARSED for p in preds]
        out["accuracy"] = sum(g == p for g, p in zip(golds, filled)) / n
        if kind == "choice":
            out["kappa"] = _kappa(golds, filled, weights)
        else:
            out["macro_f1"] = float(
                f1_score(golds, filled, labels=list(YES_NO_MAYBE), average="macro", zero_division=0)
            )
        out["primary"] = out["accuracy"]
        # Dev pools are skewed (CRADE 85% "A") while test sets are balanced: selecting on dev
        # accuracy rewards predicting the majority class, chance-corrected scores do not.
        chance_corrected = out["kappa"] if kind == "choice" else out["macro_f1"]
        out["selection"] = 0.0 if math.isnan(chance_corrected) else chance_corrected
    out["predictions"] = preds
    return out


def sample_rows(kind: str, records: list[dict], generated: list[str], predictions: list, gold_loss):
    """One row per scored sample (id, tag, gold, generated text, prediction, correct, gold loss):
    the format of every model's and the reference's per-sample rows."""
    import pandas as pd

    golds = [r["answer"] for r in records]
    return pd.DataFrame({
        "id": [r["id"] for r in records], "tag": [r["tag"] for r in records], "gold": golds,
        "generated": generated, "prediction": [None if p is None else str(p) for p in predictions],
        "correct": [per_sample_correct(kind, g, p) for g, p in zip(golds, predictions)],
        "gold_loss": gold_loss,
    })
