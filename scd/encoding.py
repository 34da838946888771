"""Records to token ids: answer-only labels, prompt cuts that never touch the answer, padding.

Shared by training, the target cache and evaluation, so none of them depends on another.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from scd.config import Config


MIN_PROMPT_TOKENS = 8


def encode(records: list[dict], tok, cfg: Config) -> tuple[list[dict], int]:
    """Token ids with labels on the answer (+EOS) only; over-long prompts lose their middle.

    Every prompt of a run is cut to the same room, ``max_length - max_new_tokens``, whatever its
    own answer: a cut that depended on the gold answer's length would leak the label through the
    prompt's length (it did: PubMedQA's yes/no/maybe differ by one token). The answer is never
    cut, so a sequence may exceed ``max_length`` by what its answer exceeds the reserve. A BOS the
    tokenizer adds is kept (the head of a cut prompt is never dropped).
    Returns the encoded items and how many prompts were truncated.
    """
    room = cfg.max_length - cfg.max_new_tokens
    if room < MIN_PROMPT_TOKENS:
        raise ValueError(f"max_length={cfg.max_length} - max_new_tokens={cfg.max_new_tokens} leaves fewer than "
                         f"{MIN_PROMPT_TOKENS} prompt tokens")
    items, truncated = [], 0
    for rec in records:
        prompt = tok(rec["prompt"])["input_ids"]  # with the tokenizer's own BOS, if it adds one (Gemma, Llama 3)
        answer = tok(rec["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        if len(prompt) > room:
            head = room // 2
            prompt = prompt[:head] + prompt[len(prompt) - (room - head):]
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
