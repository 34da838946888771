"""Supervised fine-tuning on answer tokens with ``transformers.Trainer``.

The teacher's SFT keeps N checkpoints evenly spaced over its steps (its *trajectory*, which
SCD follows); the student's SFT is both a baseline and the source of the AW anchor losses.
Optimiser and schedule: ``scd.train.training``.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import TrainerCallback

from scd.core import ranks
from scd.data.encoding import PadCollator, encode
from scd.train.models import answer_logits
from scd.train.training import WALL_FILE, MeanLossTrainer, check_finite, checkpoints, training_args

if TYPE_CHECKING:
    from scd.core.config import Config


class AnswerOnlyTrainer(MeanLossTrainer):
    """Cross-entropy on answer tokens, with the LM head applied to those positions only.

    The mean is over every answer token of the batch (standard SFT), unlike distillation's
    per-sample mean that the per-sample AW weight needs (see docs/decisions.md). Under
    accumulation or several processes it is over every answer token of the optimiser step's
    global batch (``num_items_in_batch``), not a mean of per-share means."""

    loss_is_scaled_for_ga = True  # normalised over the whole step below (or a single micro-step)

    def items_in(self, batch: dict) -> int:
        return int((batch["labels"][:, 1:] != -100).sum())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids = inputs.pop("sample_ids", None)
        logits, targets, _ = answer_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        if num_items_in_batch is None:
            loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        else:
            loss = self.pooled(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum"),
                               num_items_in_batch)
        check_finite(loss, self.state.global_step, ids)
        return (loss, None) if return_outputs else loss


class SaveAtSteps(TrainerCallback):
    """Save exactly at the given global steps: N checkpoints evenly spaced over training."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True
        return control


def checkpoint_steps(total_steps: int, n: int) -> list[int]:
    return sorted({max(1, round(total_steps * (i + 1) / n)) for i in range(n)})


def copy_checkpoints(steps: list[int], donors, out_dir: Path) -> None:
    for donor in donors:
        have = checkpoints(donor)
        if set(steps) <= set(have):
            for step in steps:  # copies, not links: the resumed trainer may write into its checkpoints
                part = out_dir / f".checkpoint-{step}.part"
                shutil.rmtree(part, ignore_errors=True)
                shutil.copytree(have[step], part, ignore=shutil.ignore_patterns(WALL_FILE))  # the time is this run's
                part.rename(out_dir / f"checkpoint-{step}")  # whole, or not there: a kill mid-copy is redone
            return


def steps_per_epoch(n_items: int, cfg: Config) -> int:
    return math.ceil(n_items / cfg.batch_size)


def run_sft(model, tok, train_records: list[dict], cfg: Config, out_dir: Path, lr: float, epochs: int,
            seed: int, n_checkpoints: int, donors=()) -> tuple[list[tuple[int, Path]], float]:
    """Train (resuming from the last checkpoint in ``out_dir`` if any); return [(step, path)] and
    the seconds trained before a resume. ``donors``: trainer folders of the same training with more
    checkpoints; the first that has all of this run's is copied, and training resumes at its end."""
    items, _ = encode(train_records, tok, cfg)
    total = steps_per_epoch(len(items), cfg) * epochs
    steps = checkpoint_steps(total, n_checkpoints)
    args = training_args(out_dir, cfg, lr, epochs, seed, train_sampling_strategy="group_by_length")
    trainer = AnswerOnlyTrainer(model=model, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
                                processing_class=tok,
                                callbacks=[SaveAtSteps(steps)])
    if ranks.is_main() and not any(out_dir.glob("checkpoint-*")):
        copy_checkpoints(steps, donors, out_dir)
    ranks.barrier()
    _, before = trainer.train_or_resume()
    found = checkpoints(out_dir)
    missing = [s for s in steps if s not in found]
    if missing:
        raise RuntimeError(f"{out_dir}: expected checkpoints at steps {steps}, missing {missing}")
    return [(s, found[s]) for s in steps], before
