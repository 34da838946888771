"""NER answers as Python list literals: the strict parse (JMED-LLM's), the lenient one that keeps
the complete items of a cut list, the cut a looping list gets (``stop_at_repeat``), and the
serialisation the data files and prompts use. Pure string functions; ``scd.scoring.metrics`` scores them.
"""
from __future__ import annotations

import ast
import re


def parse_entities(text: str) -> list[str] | None:
    """Parse a Python-literal list of strings; ``None`` if it is anything else.

    ``ast.literal_eval`` only builds literals, so model output such as
    ``__import__('os')`` is rejected rather than executed. Deeply nested or huge
    input can still raise RecursionError/MemoryError inside the parser; those
    are caught too so one pathological generation cannot crash an evaluation.
    """
    if not isinstance(text, str):
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


QUOTED_ITEM = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")  # one complete '...' or "..." literal


def parse_entities_lenient(text: str) -> list[str] | None:
    """The secondary NER parse: a list cut short (by the token budget, or looping) keeps its
    complete quoted items, de-duplicated in order; ``None`` if there is no list at all. The strict
    parse (:func:`parse_entities`) stays primary, as JMED-LLM scores."""
    strict = parse_entities(text)
    if strict is not None:
        return list(dict.fromkeys(strict))
    if not isinstance(text, str) or "[" not in text:
        return None
    body = text[text.index("[") + 1:].split("]")[0]
    items = []
    for match in QUOTED_ITEM.finditer(body):
        try:
            items.append(ast.literal_eval(match.group(0)))
        except (ValueError, SyntaxError):
            continue
    return list(dict.fromkeys(items))


def cut_at_first_repeat(text: str) -> str | None:
    """The list ``text`` opens, closed with ``]`` before its first complete item that repeats an
    earlier one; ``None`` when no item repeats (or there is no list). A decoding rule for NER: a
    set-scored list gains nothing from a repeat, and a model that starts repeating rarely stops
    (``['a', 'b', 'b', 'b', ...`` until the budget), so the list ends there."""
    if not isinstance(text, str) or "[" not in text:
        return None
    start = text.index("[") + 1
    seen, end = set(), start
    for match in QUOTED_ITEM.finditer(text, start):
        if "]" in text[end:match.start()]:  # the list closed before this item
            return None
        try:
            item = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return None
        if item in seen:
            return text[:end] + "]"
        seen.add(item)
        end = match.end()
    return None


def serialize_entities(entities: list[str]) -> str:
    """Python-literal list (``repr``), the format the data files and prompts use.

    ``repr`` picks quoting/escaping that ``literal_eval`` undoes exactly, so
    ``parse_entities(serialize_entities(x)) == x`` for any list of strings.
    """
    entities = list(entities)
    if not all(isinstance(e, str) for e in entities):
        raise TypeError("entities must all be str")
    return repr(entities)
