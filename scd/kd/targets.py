"""Teacher targets: top-k log-probs at every answer position, per checkpoint and sample id.

Built once per teacher checkpoint and reused by every method and seed, so the student never
waits for a teacher forward. The same ``teacher_topk`` runs inside the training step in the
*online* mode, which is how a test shows both give the same loss.
Stored as one ``.pt`` per checkpoint: flat ``[tokens, k]`` int32 ids and float32 log-probs
with per-sample offsets, plus the checkpoint's gold loss per sample and what it was built from.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from scd.data.encoding import PadCollator, encode
from scd.core.io import atomic_write_bytes
from scd.train.models import kd_vocab, teacher_topk


class CacheMismatch(ValueError):
    """A cache built from another checkpoint, tokenizer, k or data than the run asks for."""


@dataclass
class TeacherTargets:
    """Cached targets of one checkpoint; ``lookup`` returns rows in the batch's answer order."""

    sample_ids: list[str]
    offsets: torch.Tensor
    topk_ids: torch.Tensor
    topk_logp: torch.Tensor
    rest_logp: torch.Tensor  # [tokens, 1]: exact log-mass outside the top-k
    gold_loss: torch.Tensor
    meta: dict

    def __post_init__(self):
        self.index = {sid: i for i, sid in enumerate(self.sample_ids)}

    def lookup(self, sample_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        missing = [s for s in sample_ids if s not in self.index]
        if missing:
            raise CacheMismatch(f"target cache of {self.meta['checkpoint']} has no entry for samples {missing[:3]}")
        rows = torch.cat([torch.arange(self.offsets[self.index[s]], self.offsets[self.index[s] + 1])
                          for s in sample_ids])
        return self.topk_ids[rows].long(), self.topk_logp[rows], self.rest_logp[rows]

    def losses(self) -> dict[str, float]:
        return dict(zip(self.sample_ids, self.gold_loss.tolist()))

    def check(self, expected: dict) -> "TeacherTargets":
        for key, value in expected.items():
            if self.meta.get(key) != value:
                raise CacheMismatch(f"target cache built with {key}={self.meta.get(key)!r}, run expects {value!r}; "
                                    "delete it or rebuild")
        return self


def build_targets(model, tok, records: list[dict], cfg, k: int, temperature: float, meta: dict,
                  batch_size: int = 16) -> TeacherTargets:
    model.eval()
    items, _ = encode(records, tok, cfg)
    collate = PadCollator(tok.pad_token_id)
    ids, lps, rests, losses, lengths = [], [], [], [], []
    for start in tqdm(range(0, len(items), batch_size), desc=f"cache {meta.get('checkpoint', '')}", leave=False,
                      disable=meta.get("quiet", False)):
        batch = collate(items[start:start + batch_size])
        top_ids, top_logp, rest_logp, nll = teacher_topk(model, batch, k, temperature, kd_vocab(tok))
        ids.append(top_ids.to(torch.int32))
        lps.append(top_logp)
        rests.append(rest_logp)
        losses.append(nll)
        lengths.extend(((batch["labels"][:, 1:] != -100).sum(1)).tolist())
    offsets = torch.zeros(len(items) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    meta = {key: v for key, v in meta.items() if key != "quiet"} | {"k": k, "temperature": temperature,
                                                                  "n_samples": len(items)}
    return TeacherTargets([it["id"] for it in items], offsets, torch.cat(ids), torch.cat(lps), torch.cat(rests),
                          torch.cat(losses), meta)


def join_targets(parts: list[TeacherTargets], order: list[str]) -> TeacherTargets:
    """One cache from per-rank parts, rows in ``order`` (the train split's), as one process builds it."""
    where = {sid: (p, i) for p in parts for i, sid in enumerate(p.sample_ids)}
    missing = [s for s in order if s not in where]
    if missing or len(where) != len(order):
        raise CacheMismatch(f"cache parts hold {len(where)} samples, expected the {len(order)} of the split "
                            f"(missing {missing[:3]})")
    located = [where[s] for s in order]
    rows = [torch.arange(p.offsets[i], p.offsets[i + 1]) for p, i in located]
    offsets = torch.zeros(len(order) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor([len(r) for r in rows]), 0)
    return TeacherTargets(list(order), offsets, torch.cat([p.topk_ids[r] for (p, _), r in zip(located, rows)]),
                          torch.cat([p.topk_logp[r] for (p, _), r in zip(located, rows)]),
                          torch.cat([p.rest_logp[r] for (p, _), r in zip(located, rows)]),
                          torch.stack([p.gold_loss[i] for p, i in located]), parts[0].meta | {"n_samples": len(order)})


def save_targets(targets: TeacherTargets, path: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"sample_ids": targets.sample_ids, "offsets": targets.offsets, "topk_ids": targets.topk_ids,
                "topk_logp": targets.topk_logp, "rest_logp": targets.rest_logp, "gold_loss": targets.gold_loss, "meta": targets.meta}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_targets(path: Path) -> TeacherTargets:
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file must be rebuilt, not trusted
        raise CacheMismatch(f"target cache {path} is unreadable ({exc}); delete it to rebuild") from exc
    if "rest_logp" not in blob:
        raise CacheMismatch(f"target cache {path} has no exact leftover mass (built by an older version); "
                            "delete it to rebuild")
    return TeacherTargets(**blob)


def bytes_per_token(targets: TeacherTargets) -> float:
    per_row = targets.topk_ids.element_size() * targets.topk_ids.shape[1] + \
        targets.topk_logp.element_size() * targets.topk_logp.shape[1] + targets.rest_logp.element_size()
    return float(per_row)
