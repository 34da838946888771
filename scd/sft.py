"""Supervised fine-tuning on answer tokens with ``transformers.Trainer``.

The teacher's SFT keeps N checkpoints evenly spaced over its steps (its *trajectory*, which
SCD follows); the student's SFT is both a baseline and the source of the AW anchor losses.
Optimiser and schedule follow the paper: AdamW (0.9, 0.95), clip 1.0, cosine, 10% warm-up.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from scd import ranks
from scd.config import Config
from scd.encoding import PadCollator, encode
from scd.io import quiet
from scd.models import answer_logits

class NonFiniteLoss(RuntimeError):
    pass


class MeanLossTrainer(Trainer):
    """Base of our trainers: ``compute_loss`` returns a per-batch mean, so the Trainer must
    scale it for gradient accumulation itself (it skips that when it believes the model
    consumes ``num_items_in_batch``, which it infers from ``forward(**kwargs)``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


class AnswerOnlyTrainer(MeanLossTrainer):
    """Cross-entropy on answer tokens, with the LM head applied to those positions only."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids = inputs.pop("sample_ids", None)
        logits, targets, _ = answer_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        check_finite(loss, self.state.global_step, ids)
        return (loss, None) if return_outputs else loss


def check_finite(loss: torch.Tensor, step: int, sample_ids) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(f"non-finite loss {loss.detach().tolist()} at step {step} on samples {sample_ids}; "
                            "the last saved checkpoint is kept")


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


def steps_per_epoch(n_items: int, cfg: Config) -> int:
    return math.ceil(n_items / cfg.batch_size)


def training_args(out_dir: Path, cfg: Config, lr: float, epochs: int, seed: int, **extra) -> TrainingArguments:
    """``cfg.batch_size`` is the global batch: under ``accelerate launch`` every optimiser step still
    takes the same ``batch_size`` samples in the same order, each rank a 1/W share of them
    (``split_batches``), so step counts, checkpoint steps and the sampler's length groups do not
    depend on the number of processes."""
    ranks.check_global_batch(cfg.batch_size)
    kwargs = dict(
        output_dir=str(out_dir), per_device_train_batch_size=cfg.batch_size, num_train_epochs=epochs,
        learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=cfg.max_grad_norm, save_strategy="no",
        save_total_limit=None, logging_steps=10, report_to=[], seed=seed, data_seed=seed,
        remove_unused_columns=False, dataloader_num_workers=0, bf16=cfg.bf16,
        disable_tqdm=quiet(),
        use_cpu=not torch.cuda.is_available(), ddp_timeout=int(ranks.WAIT_HOURS * 3600),
        accelerator_config={"split_batches": ranks.world_size() > 1},
    )
    if cfg.gradient_checkpointing:  # named only when on: transformers 5.24 warns on every use of the name
        kwargs["gradient_checkpointing"] = True
    kwargs.update(extra)
    return TrainingArguments(**kwargs)


def run_sft(model, tok, train_records: list[dict], cfg: Config, out_dir: Path, lr: float, epochs: int,
            seed: int, n_checkpoints: int) -> list[tuple[int, Path]]:
    """Train (resuming from the last checkpoint in ``out_dir`` if any); return [(step, path)]."""
    items, _ = encode(train_records, tok, cfg)
    total = steps_per_epoch(len(items), cfg) * epochs
    steps = checkpoint_steps(total, n_checkpoints)
    args = training_args(out_dir, cfg, lr, epochs, seed, train_sampling_strategy="group_by_length")
    trainer = AnswerOnlyTrainer(model=model, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
                                processing_class=tok,
                                callbacks=[SaveAtSteps(steps)])
    last = last_checkpoint(out_dir)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    found = {int(p.name.split("-")[1]): p for p in out_dir.glob("checkpoint-*")}
    missing = [s for s in steps if s not in found]
    if missing:
        raise RuntimeError(f"{out_dir}: expected checkpoints at steps {steps}, missing {missing}")
    return [(s, found[s]) for s in steps]


def last_checkpoint(out_dir: Path) -> Path | None:
    """Newest complete checkpoint (Trainer writes trainer_state.json last)."""
    done = [p for p in Path(out_dir).glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)
