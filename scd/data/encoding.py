"""Records to token ids: answer-only labels, prompt cuts that never touch the answer, padding.

Shared by training, the target cache and evaluation, so none of them depends on another.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch

from scd.core.tasks import QUOTED

if TYPE_CHECKING:
    from scd.core.config import Config


MIN_PROMPT_TOKENS = 8
SHORT_ANSWER_RESERVE = 4  # a choice letter or yes/no/maybe, and EOS, in any tokenizer used here


CONTEXT = re.compile(r"Context: (.+?)\nQuestion:", re.S)


def passage_focus(prompt: str) -> tuple[int, int, int | None] | None:
    """Where a prompt may lose text: its passage (the longest 「…」 span of a JMED-LLM prompt, or
    PubMedQA's context), as character offsets ``(start, end, focus)``; ``focus`` is where the
    passage first mentions another quoted term of the question (CRADE's adverse-event term),
    else None. None when the prompt has no passage: it is then cut in its middle."""
    spans = [m.span(1) for m in QUOTED.finditer(prompt)] or [m.span(1) for m in CONTEXT.finditer(prompt)]
    if not spans:
        return None
    start, end = max(spans, key=lambda s: s[1] - s[0])
    for a, b in spans:
        at = prompt.find(prompt[a:b], start, end) if (a, b) != (start, end) else -1
        if at >= 0:
            return start, end, at
    return start, end, None


def kept_positions(n: int, offsets: list[tuple[int, int]] | None, prompt: str, room: int, rule: str) -> list[int]:
    """Which of a prompt's ``n`` tokens survive a cut to ``room``. ``middle``: the prompt loses its
    middle. ``passage``: only the passage loses text, keeping a window centred on the term the
    question asks about (or the passage's head and tail), so the instruction, question and options
    stay whole; a prompt whose passage is too short to absorb the cut, or has none, is cut in its
    middle."""
    excess = n - room
    where = passage_focus(prompt) if rule == "passage" and offsets is not None else None
    if where is not None:
        start, end, focus = where
        inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
        if inside and len(inside) - excess >= MIN_PROMPT_TOKENS:
            first, last, keep = inside[0], inside[-1] + 1, len(inside) - excess
            if focus is None:
                window = list(range(first, first + keep // 2)) + list(range(last - (keep - keep // 2), last))
            else:
                at = next((i for i in inside if offsets[i][1] > focus), first)
                lo = min(max(at - keep // 2, first), last - keep)
                window = list(range(lo, lo + keep))
            return list(range(first)) + window + list(range(last, n))
    head = room // 2
    return list(range(head)) + list(range(n - (room - head), n))


def prompt_room(rec: dict, cfg: Config) -> int:
    short = cfg.prompt_room == "by_kind" and rec.get("kind") in ("choice", "yesno")
    return cfg.max_length - (SHORT_ANSWER_RESERVE if short else cfg.max_new_tokens)


def prompt_text(rec: dict, tok, cfg: Config) -> str:
    """The text a model reads before its answer: the record's prompt, or (``cfg.chat_template``)
    that prompt as a user turn in the tokenizer's chat template with the assistant's turn opened,
    the form an instruction-tuned model was trained to answer."""
    if not getattr(cfg, "chat_template", False):
        return rec["prompt"]
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"config chat_template=True, but the tokenizer {getattr(tok, 'name_or_path', '')!r} has no "
                         "chat template (a base model's tokenizer): leave chat_template off for it")
    return tok.apply_chat_template([{"role": "user", "content": rec["prompt"]}], tokenize=False,
                                   add_generation_prompt=True)


def encode(records: list[dict], tok, cfg: Config) -> tuple[list[dict], int]:
    """Token ids with labels on the answer (+EOS) only; over-long prompts are cut (``cfg.prompt_cut``,
    see :func:`kept_positions`).

    Every prompt of a task is cut to the same room, ``max_length - max_new_tokens``
    (``prompt_room="by_kind"``: choice and yes/no prompts reserve only ``SHORT_ANSWER_RESERVE``),
    whatever its own answer: a cut that depended on the gold answer's length would leak the label
    through the prompt's length (it did: PubMedQA's yes/no/maybe differ by one token). The answer is never
    cut, so a sequence may exceed ``max_length`` by what its answer exceeds the reserve. A BOS the
    tokenizer adds is kept (the head of a cut prompt is never dropped). With ``cfg.chat_template``
    the prompt is :func:`prompt_text`'s, tokenized as ``apply_chat_template`` does (the template
    holds its own special tokens, so the tokenizer adds none).
    Returns the encoded items and how many prompts were truncated.
    """
    room = cfg.max_length - cfg.max_new_tokens
    if room < MIN_PROMPT_TOKENS:
        raise ValueError(f"max_length={cfg.max_length} - max_new_tokens={cfg.max_new_tokens} leaves fewer than "
                         f"{MIN_PROMPT_TOKENS} prompt tokens")
    offsets = cfg.prompt_cut == "passage" and getattr(tok, "is_fast", False)
    items, truncated = [], 0
    templated = getattr(cfg, "chat_template", False)
    for rec in records:
        text = prompt_text(rec, tok, cfg)
        # with the tokenizer's own BOS, if it adds one (a chat template writes its own)
        enc = tok(text, return_offsets_mapping=offsets, add_special_tokens=not templated)
        prompt = enc["input_ids"]
        answer = tok(rec["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        fits = prompt_room(rec, cfg)
        if len(prompt) > fits:
            prompt = [prompt[i] for i in kept_positions(len(prompt), enc.get("offset_mapping"), text, fits,
                                                        cfg.prompt_cut)]
            truncated += 1
        items.append({"id": rec["id"], "input_ids": prompt + answer,
                      "labels": [-100] * len(prompt) + answer, "prompt_len": len(prompt)})
    return items, truncated


def prompt_ids(records: list[dict], tok, cfg: Config) -> list[list[int]]:
    """The prompt part of ``encode`` (same truncation), for generation."""
    items, _ = encode(records, tok, cfg)
    return [it["input_ids"][: it["prompt_len"]] for it in items]


class PadCollator:
    """Right-pads a batch; keeps sample ids so losses can be traced back to rows."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        out = {"input_ids": [], "labels": [], "attention_mask": []}
        for b in batch:
            pad = width - len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [self.pad_id] * pad)
            out["labels"].append(b["labels"] + [-100] * pad)
            out["attention_mask"].append([1] * len(b["input_ids"]) + [0] * pad)
        tensors = {k: torch.tensor(v) for k, v in out.items()}
        tensors["sample_ids"] = [b["id"] for b in batch]
        return tensors
