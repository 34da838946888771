"""Free-text answers (task cards of kind ``text``): the prediction is the generation's first line,
scored by exact match and SQuAD-style token F1 on tokens that mean the same in any language."""
from __future__ import annotations

import re
from collections import Counter


def parse_text(text: str) -> str | None:
    """A free-text answer: the first line of the generation, stripped; None when it is empty."""
    line = text.strip().split("\n", 1)[0].strip()
    return line or None


_WORD_RE = re.compile(r"\w+")


def text_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, punctuation dropped; a word of non-ASCII letters (Japanese, Chinese:
    no spaces between words) counts character by character, so token F1 means the same in any
    language."""
    out = []
    for word in _WORD_RE.findall(text.lower()):
        out.extend([word] if word.isascii() else list(word))
    return out


def exact_match(gold: str, pred: str | None) -> float:
    """1 when the answers are equal after lower-casing and dropping punctuation and spacing."""
    return float(pred is not None and text_tokens(gold) == text_tokens(pred))


def token_f1(gold: str, pred: str | None) -> float:
    """SQuAD-style token F1 on :func:`text_tokens` (multiset overlap); both empty counts as 1."""
    g, p = text_tokens(gold), text_tokens(pred or "")
    if not g or not p:
        return float(g == p)
    common = sum((Counter(g) & Counter(p)).values())
    return 2 * common / (len(p) + len(g)) if common else 0.0
