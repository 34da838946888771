"""Base-LM pretraining on train-split text, so both tiny models start as "pretrained LMs".

Without it a bigger tiny model is no better than a smaller one on these tasks (see
docs/measurements.md); the teacher gets more compute than the student, which opens the capacity
gap the paper's question needs. Shared by every task and seed, so it runs once and is cached.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from scd.train.models import device_of
from scd.train.training import MeanLossTrainer, check_finite, training_args

if TYPE_CHECKING:
    from scd.core.config import Config


class WindowDataset(torch.utils.data.Dataset):
    """Random fixed-length windows of the concatenated corpus, drawn once from a seed.

    With ``bos_id`` every window starts with that token: models pretrained that way (Gemma:
    its loss on our corpus is 4.6 with BOS, 8.4 without) must never see a window without it.
    """

    def __init__(self, stream: np.ndarray, window: int, n: int, seed: int, bos_id: int | None = None):
        if len(stream) <= window:
            raise ValueError(f"pretraining corpus has {len(stream)} tokens, fewer than one window of {window}")
        self.stream, self.bos = stream, [] if bos_id is None else [bos_id]
        self.span = window - len(self.bos)
        self.starts = np.random.default_rng(seed).integers(0, len(stream) - window, size=n)

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        ids = torch.tensor(self.bos + self.stream[self.starts[i]:self.starts[i] + self.span].tolist(), dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}


class FullSequenceTrainer(MeanLossTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(input_ids=inputs["input_ids"], labels=inputs["labels"])
        check_finite(out.loss, self.state.global_step, "pretraining windows")
        return (out.loss, out) if return_outputs else out.loss


def token_stream(texts: list[str], tok) -> np.ndarray:
    ids: list[int] = []
    for text in texts:
        ids.extend(tok(text, add_special_tokens=False)["input_ids"])
        ids.append(tok.eos_token_id)
    return np.asarray(ids, dtype=np.int32)


def pretrain(model, stream: np.ndarray, steps: int, batch: int, lr: float, cfg: Config, out_dir, seed: int,
             bos_id: int | None = None, *, save_to, callbacks=()) -> dict:
    """``steps`` of next-token loss on random corpus windows (base LMs, and healing a pruned student),
    then the model saved to ``save_to`` by the Trainer (which gathers sharded weights under FSDP)."""
    data = WindowDataset(stream, cfg.pretrain_window, steps * batch, seed, bos_id)
    args = training_args(out_dir, cfg.replace(batch_size=batch), lr, 1, seed,
                         save_strategy="steps", save_steps=max(1, steps // 4), save_total_limit=1,
                         logging_steps=max(1, steps // 20))
    trainer = FullSequenceTrainer(model=model, args=args, train_dataset=data, callbacks=list(callbacks))
    result, before = trainer.train_or_resume()
    trainer.save_model(str(save_to))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": steps, "tokens": len(data) * cfg.pretrain_window,
            "final_loss": losses[-1] if losses else float(result.training_loss),
            "train_runtime_s": result.metrics.get("train_runtime"), "resumed_s": before, "loss_curve": losses}


@torch.no_grad()
def window_loss(model, stream: np.ndarray, window: int, n: int = 16, seed: int = 0, bos_id: int | None = None) -> float:
    """Mean next-token loss on ``n`` fixed corpus windows: before/after numbers for healing."""
    model.eval()
    data = WindowDataset(stream, window, n, seed, bos_id)
    dev = device_of(model)
    losses = [float(model(input_ids=data[i]["input_ids"][None].to(dev), labels=data[i]["labels"][None].to(dev)).loss)
              for i in range(n)]
    return float(np.mean(losses))
