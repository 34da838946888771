"""What every trainer of the package shares: ``transformers.TrainingArguments`` built from the
config (AdamW (0.9, 0.95), clip, cosine with warm-up, as in the paper), a per-batch-mean loss
base class, the non-finite-loss guard and resumption from the newest complete checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import Trainer, TrainingArguments

from scd import ranks
from scd.io import quiet

if TYPE_CHECKING:
    from scd.config import Config


class NonFiniteLoss(RuntimeError):
    pass


class MeanLossTrainer(Trainer):
    """Base of our trainers: ``compute_loss`` returns a per-batch mean, so the Trainer must
    scale it for gradient accumulation itself (it skips that when it believes the model
    consumes ``num_items_in_batch``, which it infers from ``forward(**kwargs)``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


def check_finite(loss: torch.Tensor, step: int, sample_ids) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(f"non-finite loss {loss.detach().tolist()} at step {step} on samples {sample_ids}; "
                            "the last saved checkpoint is kept")


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


def last_checkpoint(out_dir: Path) -> Path | None:
    """Newest complete checkpoint (Trainer writes trainer_state.json last)."""
    done = [p for p in Path(out_dir).glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)
