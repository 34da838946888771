"""Greedy generation (batched, KV cache) and teacher-forced gold loss, scored by ``scd.scoring.metrics``.
Under ``accelerate launch`` every rank takes a share of the batches and all get every result.

Per-sample rows (id, tag, generated text, prediction, correct, gold loss) feed the SFS/TFS
analysis; the summary dict feeds the tables.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from scd.data import entitylists
from scd.scoring import metrics
from scd.core import ranks
from scd.data.encoding import PadCollator, encode, prompt_ids
from scd.core.io import quiet
from scd.train.models import answer_logits, device_of, model_inputs, per_sample_mean
from scd.core.tasks import get_task

if TYPE_CHECKING:
    from scd.core.config import Config


@torch.no_grad()
def gold_losses(model, tok, records: list[dict], cfg: Config, desc: str = "gold loss") -> dict[str, float]:
    """Mean NLL per answer token of each sample's gold answer: the per-sample risk ℓ(x)."""
    model.eval()
    items, _ = encode(records, tok, cfg)
    collate, out = PadCollator(tok.pad_token_id), {}
    for idx in tqdm(eval_batches([len(i["input_ids"]) for i in items], cfg), desc=desc, leave=False, disable=quiet()):
        batch = collate([items[i] for i in idx])
        logits, targets, mask = answer_logits(model, *model_inputs(batch, model))
        nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        for sid, value in zip(batch["sample_ids"], per_sample_mean(nll, mask).tolist()):
            out[sid] = value
    gathered = ranks.gather_dict(out)
    return {r["id"]: gathered[r["id"]] for r in records}


def eval_batches(lengths: list[int], cfg: Config) -> list[list[int]]:
    """This rank's share of the evaluation batches: items sorted by length (least padding), cut
    into batches of ``eval_batch_size``, every W-th batch to each of W ranks."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return ranks.my_share([order[s:s + cfg.eval_batch_size] for s in range(0, len(order), cfg.eval_batch_size)])


def new_token_budget(task_name: str, train_records: list[dict], tok, cfg: Config) -> int:
    """Enough new tokens for the longest train answer (+EOS); lists and free text never more
    than the cap (a label needs no cap)."""
    longest = max(len(tok(r["answer"], add_special_tokens=False)["input_ids"]) for r in train_records)
    return min(longest + 1, cfg.max_new_tokens) if get_task(task_name).kind in ("ner", "text") else longest + 1


class RepeatStop(StoppingCriteria):
    """Ends a row once its list repeats a complete item (``entitylists.cut_at_first_repeat``); the
    text is cut back and closed afterwards. An item completes only with a closing quote, so a row's
    text is decoded and read again only at the steps whose new token holds one."""

    def __init__(self, tok, width: int):
        self.tok, self.width = tok, width

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        for row, last in enumerate(self.tok.batch_decode(input_ids[:, -1:])):
            if "'" in last or '"' in last:
                text = self.tok.decode(input_ids[row, self.width:], skip_special_tokens=True)
                done[row] = entitylists.cut_at_first_repeat(text) is not None
        return done


@torch.no_grad()
def generate(model, tok, records: list[dict], cfg: Config, max_new_tokens: int, desc: str = "generate",
             stop: str | None = None, stop_at_repeat: bool = False) -> list[str]:
    """Greedy continuations of the prompts; ``stop``: a string that ends a sequence (kept);
    ``stop_at_repeat``: a row ends at its first repeated list item (cut back by the caller)."""
    model.eval()
    stopping = {"stop_strings": [stop], "tokenizer": tok} if stop else {}
    prompts = prompt_ids(records, tok, cfg)
    texts: dict[int, str] = {}
    dev = device_of(model)
    for idx in tqdm(eval_batches([len(p) for p in prompts], cfg), desc=desc, leave=False, disable=quiet()):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(prompts[i])) + prompts[i] for i in idx], device=dev)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx], device=dev)
        criteria = StoppingCriteriaList([RepeatStop(tok, width)] if stop_at_repeat else [])
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             use_cache=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             stopping_criteria=criteria, **stopping)
        for row, i in enumerate(idx):
            texts[i] = tok.decode(out[row, width:], skip_special_tokens=True).strip()
    gathered = ranks.gather_dict(texts)
    return [gathered[i] for i in range(len(prompts))]


def evaluate(model, tok, records: list[dict], task_name: str, cfg: Config, max_new_tokens: int,
             desc: str = "eval") -> tuple[dict, pd.DataFrame]:
    """Score one split: summary metrics and one row per sample."""
    task = get_task(task_name)
    stop = "]" if task.kind == "ner" and cfg.stop_at_bracket else None  # a list ends at its closing bracket
    repeat = task.kind == "ner" and cfg.stop_at_repeat
    texts = generate(model, tok, records, cfg, max_new_tokens, desc=f"{desc} generate", stop=stop,
                     stop_at_repeat=repeat)
    cuts = [entitylists.cut_at_first_repeat(t) if repeat else None for t in texts]
    texts = [cut or text for cut, text in zip(cuts, texts)]
    losses = gold_losses(model, tok, records, cfg, desc=f"{desc} loss")
    summary = metrics.score(task.kind, [r["answer"] for r in records], texts, weights=task.kappa_weights)
    rows = metrics.sample_rows(task.kind, records, texts, summary.pop("predictions"),
                               [losses[r["id"]] for r in records])
    summary["gold_loss"] = float(rows["gold_loss"].mean())
    if repeat:
        summary["n_repeat_cut"] = sum(cut is not None for cut in cuts)
    return summary, rows

