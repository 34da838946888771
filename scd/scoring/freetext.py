"""Free-text answers (task cards of kind ``text``): the prediction is the generation's first line,
scored by exact match and SQuAD-style token F1 on words (characters for Japanese and Chinese)."""
from __future__ import annotations

import re
from collections import Counter


def parse_text(text: str) -> str | None:
    """A free-text answer: the first line of the generation, stripped; None when it is empty."""
    line = text.strip().split("\n", 1)[0].strip()
    return line or None


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"  # kana, kanji, half-width kana
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def text_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, punctuation dropped. Japanese and Chinese write no spaces between
    words, so each kana or CJK character is a token of its own; every other script (accented
    Latin, Cyrillic, Hangul) keeps its space-separated words whole."""
    return _TOKEN_RE.findall(text.lower())


def exact_match(gold: str, pred: str | None) -> float:
    """1 when both answers give the same :func:`text_tokens` (case and punctuation ignored)."""
    return float(pred is not None and text_tokens(gold) == text_tokens(pred))


def token_f1(gold: str, pred: str | None) -> float:
    """SQuAD-style token F1 on :func:`text_tokens` (multiset overlap); both empty counts as 1."""
    g, p = text_tokens(gold), text_tokens(pred or "")
    if not g or not p:
        return float(g == p)
    common = sum((Counter(g) & Counter(p)).values())
    return 2 * common / (len(p) + len(g)) if common else 0.0
