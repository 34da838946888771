"""What every trainer of the package shares: ``transformers.TrainingArguments`` built from the
config (AdamW (0.9, 0.95), clip, cosine with warm-up, as in the paper), a per-batch-mean loss
base class, the non-finite-loss guard and resumption from the newest complete checkpoint, with
the wall time of the interrupted part carried over so a resumed stage reports its whole cost."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from scd.core import ranks
from scd.core.io import quiet, read_json, write_json

if TYPE_CHECKING:
    from scd.core.config import Config


class NonFiniteLoss(RuntimeError):
    pass


class MeanLossTrainer(Trainer):
    """Base of our trainers: ``compute_loss`` returns a per-batch mean, so the Trainer must
    scale it for gradient accumulation itself (it skips that when it believes the model
    consumes ``num_items_in_batch``, which it infers from ``forward(**kwargs)``). A trainer
    whose loss averages over items (``items_in``) instead normalises by the whole step's items."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        for callback in self.callback_handler.callbacks:  # TrainingArguments has no logging_dir since transformers 5
            if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
                callback.logging_dir = str(logging_dir(self.args.output_dir))
        self.clock = WallClock()
        self.callback_handler.callbacks.insert(0, self.clock)  # first: a callback that fails on save comes after it

    def train_or_resume(self):
        """``train`` from the newest complete checkpoint in the output folder, if any. Returns the
        result and the seconds the interrupted runs before it had trained (0 for a fresh start)."""
        last = last_checkpoint(self.args.output_dir)
        self.clock.before = seconds_before(last)
        return self.train(resume_from_checkpoint=str(last) if last else None), self.clock.before

    def items_in(self, batch: dict) -> int | None:
        """How many items ``compute_loss`` averages over in ``batch`` (answer tokens, samples), or
        None: a plain per-batch mean that the Trainer divides by the accumulation steps."""
        return None

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        """``num_items_in_batch``: the items of the whole optimiser step (every micro-batch, every
        process), so a loss averaged over items is the same however the global batch is split:
        a mean of per-micro-batch (or per-process) means weights the items of a small share more.
        None with one process and no accumulation, where ``compute_loss`` keeps its plain mean."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = [self.items_in(b) for b in batches]
        if not batches or counts[0] is None or (self.args.gradient_accumulation_steps == 1
                                                and self.accelerator.num_processes == 1):
            return batches, None
        total = torch.tensor(sum(counts), device=device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.gather(total).sum()
        return batches, total

    def pooled(self, total: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        """This micro-batch's share of the optimiser step's mean: its items' loss ``total`` over all
        the step's items, times the processes (DDP averages gradients over them)."""
        return total / num_items_in_batch * self.accelerator.num_processes

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """With ``warmup_from_first_step`` the cosine warm-up gives step 1 a learning rate
        ``peak/(w+1)`` instead of 0 (transformers' warm-up starts at 0, so a stage of one
        optimiser step would not move the model at all)."""
        if self.lr_scheduler is None and getattr(self.args, "warmup_from_first_step", False):
            warm = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer, lambda step: cosine_from_first_step(step, warm, num_training_steps))
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)


def cosine_from_first_step(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps that starts above 0, then cosine to 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def check_finite(loss: torch.Tensor, step: int, sample_ids) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(f"non-finite loss {loss.detach().tolist()} at step {step} on samples {sample_ids}; "
                            "the last saved checkpoint is kept")


def training_args(out_dir: Path, cfg: Config, lr: float, epochs: int, seed: int, **extra) -> TrainingArguments:
    """``cfg.batch_size`` is the global batch: under ``accelerate launch`` every optimiser step still
    takes the same ``batch_size`` samples in the same order, each rank a 1/W share of them
    (``split_batches``), so step counts, checkpoint steps and the sampler's length groups do not
    depend on the number of processes. ``cfg.grad_accum`` splits it further into equal micro-steps
    (the sampler still groups whole global batches), so the same holds for accumulation."""
    ranks.check_global_batch(cfg.batch_size)
    w, accum = ranks.world_size(), cfg.grad_accum
    if cfg.batch_size % (w * accum):
        raise ValueError(f"config batch_size={cfg.batch_size} is not divisible by the world size {w} x grad_accum "
                         f"{accum}: each process takes batch_size / (world size x grad_accum) samples per micro-step")
    kwargs = dict(
        output_dir=str(out_dir), per_device_train_batch_size=cfg.batch_size // accum,
        gradient_accumulation_steps=accum, num_train_epochs=epochs,
        learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=cfg.max_grad_norm, save_strategy="no",
        save_total_limit=None, logging_steps=cfg.logging_steps, report_to=cfg.report_targets, seed=seed, data_seed=seed,
        remove_unused_columns=False, dataloader_num_workers=0, bf16=cfg.bf16,
        disable_tqdm=quiet(),
        use_cpu=not torch.cuda.is_available(), ddp_timeout=int(ranks.WAIT_HOURS * 3600),
        accelerator_config={"split_batches": ranks.world_size() > 1},
    )
    if cfg.gradient_checkpointing:  # named only when on: transformers 5.24 warns on every use of the name
        kwargs["gradient_checkpointing"] = True
    kwargs.update(extra)
    args = TrainingArguments(**kwargs)
    args.warmup_from_first_step = cfg.warmup_from_first_step  # read by MeanLossTrainer.create_scheduler
    return args


def logging_dir(out_dir: Path) -> Path:
    """TensorBoard event files of one trainer folder (an SFT run, a distillation stage): a fixed
    name, so a resumed stage appends to its own folder instead of starting a dated one."""
    return Path(out_dir) / "logs"


WALL_FILE = "wall_seconds.json"


class WallClock(TrainerCallback):
    """Writes, beside each checkpoint, the seconds trained up to it (this run's and the runs it
    resumed): a stage killed and resumed still reports what it cost in all."""

    def __init__(self):
        self.before, self.start = 0.0, time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            write_json(ckpt / WALL_FILE, {"seconds": self.before + time.time() - self.start})


def seconds_before(checkpoint: Path | None) -> float:
    """Seconds trained up to ``checkpoint`` (0 when none, or saved before this file existed)."""
    path = Path(checkpoint or "", WALL_FILE)
    return float(read_json(path)["seconds"]) if checkpoint and path.is_file() else 0.0


def checkpoints(out_dir: Path) -> dict[int, Path]:
    """Complete checkpoints by step (Trainer writes trainer_state.json last)."""
    return {int(p.name.split("-")[1]): p for p in Path(out_dir).glob("checkpoint-*")
            if (p / "trainer_state.json").is_file()}


def last_checkpoint(out_dir: Path) -> Path | None:
    done = checkpoints(out_dir)
    return done[max(done)] if done else None
