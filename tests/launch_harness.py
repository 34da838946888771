"""Test harness: one training run inside whatever process group ``accelerate launch`` created.

    accelerate launch --cpu --num_processes 2 tests/launch_harness.py \\
        --profile smoke --task crade --mode distill --method scd_aw --steps 4 --global-batch 4 --out losses.json

It builds the run from the package's own stages, trainers and loss (unchanged), then
trains ``--steps`` optimiser steps with per-device batch = global batch / world size, in a fixed
sequential order, so 1 and W processes see the same global batches; it writes (rank 0 only,
atomically) the per-step losses and gradient norms of ``trainer.state.log_history``, the sample
ids of every global batch, each rank's local losses and a fingerprint of each rank's final
weights. ``--mode sft`` is one answer-only SFT run from a base LM; ``--mode distill`` is the
first distillation stage of ``--method`` (same checkpoint choice and sample weights as
``scd.stages.distill.distill_stage``). ``--mode evaluate`` scores the teacher SFT's best checkpoint
on the test split with the pipeline's evaluation (each rank a share of the batches) and writes
the per-sample rows.

Preparatory stages (tokenizer, base LMs, teacher/student SFT, target cache) are the package's
compute-or-load stages, which run under the launcher themselves (``scd.core.ranks``): a missing one is
built by all ranks, finished ones are loaded. Stage keys do not depend on the world size, so
stages built beforehand in one process are reused.

Under DDP the loss still works unchanged: ``scd.train.models.answer_logits`` sends the backbone call
through the wrapper's own forward, which is what DDP needs to average gradients.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import scd  # noqa: F401  (first: pins the CPU kernels before torch loads, as `-m scd` does)
import torch
from accelerate.utils import gather_object

from scd.core import numerics, ranks
from scd.core.config import get_config
from scd.kd.trainer import DistillTrainer
from scd.data.encoding import PadCollator, encode
from scd.core.io import write_json
from scd.core.methods import parse_method
from scd.train.models import inference_dtype, load_for_training, load_model, load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.stages.distill import cache_stage, check_shared_vocabulary, distill_trainer, read_anchor, stage_plan
from scd.train.sft import AnswerOnlyTrainer
from scd.train.training import training_args


def launched(trainer_cls):
    """``trainer_cls`` with its unchanged ``compute_loss``, fed a model DDP can synchronise, and
    a record of each rank's sample ids and local loss per micro-step."""

    class Launched(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen: list[list[str]] = []
            self.local_losses: list[float] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.model.training:
                self.seen.append(list(inputs["sample_ids"]))
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = out[0] if return_outputs else out
            if self.model.training:
                self.local_losses.append(float(loss.detach()))
            return out

    Launched.__name__ = f"Launched{trainer_cls.__name__}"
    return Launched


# ------------------------------------------------------------------ building the run
def no_dropout(model) -> None:
    """Identical forward passes on any number of ranks: no stochastic layers."""
    for key in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop"):
        if hasattr(model.config, key):
            setattr(model.config, key, 0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def prepare(cfg, mode: str, role: str, method_name: str, task: str, seed: int) -> dict:
    """Compute-or-load every preparatory stage the run needs (the package's own stage functions)."""
    if mode == "sft":
        base_path, _ = base_model_stage(cfg, role)
        return {"base_path": base_path}
    teacher = sft_stage(cfg, "teacher", task, seed)
    student_sft = sft_stage(cfg, "student", task, seed)
    check_shared_vocabulary(teacher, student_sft)
    base_path, _ = base_model_stage(cfg, "student")
    targets, cache = cache_stage(cfg, teacher, task)
    return {"base_path": base_path, "teacher": teacher, "anchor": read_anchor(student_sft), "targets": targets,
            "kl_best": cache.kl_from_best, "method": parse_method(method_name)}


def build_trainer(cfg, opts, prep: dict, out_dir: Path):
    """The package's trainer for ``opts.mode`` (distill: stage 0 of ``distill_stage``)."""
    splits = task_splits(cfg, opts.task)
    tok = load_tokenizer(prep["base_path"])
    items, _ = encode(splits["train"], tok, cfg)
    model = load_for_training(prep["base_path"])
    no_dropout(model)
    # the profile's trainer settings with this run's global batch and accumulation, in a fixed order
    run_cfg = cfg.replace(batch_size=opts.global_batch, grad_accum=opts.grad_accum)
    common = dict(max_steps=opts.steps, logging_steps=1, train_sampling_strategy="sequential", save_strategy="no",
                  disable_tqdm=True)
    if opts.mode == "sft":
        lr = opts.lr or (cfg.teacher_lr if opts.role == "teacher" else cfg.student_lr)
        args = training_args(out_dir, run_cfg, lr, 1, opts.seed, **common)
        trainer = launched(AnswerOnlyTrainer)(
            model=model, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
            processing_class=tok)
        return trainer, {"role": opts.role, "lr": lr}
    method, teacher, targets = prep["method"], prep["teacher"], prep["targets"]
    chosen, scores, weights = stage_plan(cfg, method, 0, model, tok, splits["train"], targets, prep["kl_best"],
                                         teacher.best_index, prep["anchor"])
    lr = opts.lr or cfg.distill_lr
    args = training_args(out_dir, run_cfg, lr, 1, opts.seed * 1000, **common)
    trainer = distill_trainer(cfg, model, tok, items, targets[chosen], weights, args, launched(DistillTrainer))
    return trainer, {"method": method.name, "checkpoint": teacher.trajectory[chosen].checkpoint,
                     "candidate_scores": scores, "lr": lr}


def fingerprint(model) -> dict:
    """Exact (sha256 of the float32 bytes) and approximate (float64 sums) identity of the weights."""
    digest, total, squares = hashlib.sha256(), 0.0, 0.0
    for name, p in sorted(model.state_dict().items()):
        t = p.detach().float().cpu().contiguous()
        digest.update(name.encode())
        digest.update(t.numpy().tobytes())
        total += float(t.double().sum())
        squares += float(t.double().pow(2).sum())
    return {"sha256": digest.hexdigest()[:16], "sum": total, "sum_sq": squares}


def evaluate_run(cfg, opts, state) -> dict:
    """The teacher's test scoring as its SFT stage does it (same dtype), under this process group;
    ``--eval-batch`` changes the scoring batches only, never the stage that is loaded."""
    from scd.train.evaluate import eval_batches, evaluate
    from scd.data.encoding import prompt_ids

    teacher = sft_stage(cfg, "teacher", opts.task, opts.seed)
    scoring = cfg.replace(eval_batch_size=opts.eval_batch or cfg.eval_batch_size)
    tok, records = load_tokenizer(teacher.best_path), task_splits(cfg, opts.task)["test"]
    model = load_model(teacher.best_path, inference_dtype(cfg)).eval()
    summary, rows = evaluate(model, tok, records, opts.task, scoring, teacher.max_new_tokens)
    mine = [i for b in eval_batches([len(p) for p in prompt_ids(records, tok, scoring)], scoring) for i in b]
    on_meta = any(p.is_meta for p in load_for_training(teacher.best_path).parameters())  # FSDP loading path
    result = {"world_size": state.num_processes, "summary": summary, "rows": rows.to_dict("records"),
              "items_per_rank": sorted(gather_object([(state.process_index, len(mine))])),
              "training_load_on_meta": sorted(gather_object([(state.process_index, on_meta)]))}
    if state.is_main_process:
        write_json(opts.out, result)
    state.wait_for_everyone()
    return result


# ------------------------------------------------------------------ entry point
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scd.launch", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="smoke")
    p.add_argument("--task", default="crade")
    p.add_argument("--mode", choices=("sft", "distill", "evaluate"), required=True)
    p.add_argument("--method", default="scd_aw", help="distill: td, cd, scd, with or without _aw")
    p.add_argument("--role", choices=("teacher", "student"), default="student", help="sft: which base LM to tune")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1, help="optimiser steps")
    p.add_argument("--global-batch", type=int, default=4, help="samples per optimiser step, all ranks")
    p.add_argument("--eval-batch", type=int, default=None, help="evaluate: generation batch (default: the profile's)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-steps per optimiser step (per rank)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the profile's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per rank (default cores / ranks)")
    p.add_argument("--out", required=True, type=Path, help="JSON written by rank 0")
    opts = p.parse_args(argv)
    if opts.steps < 1 or opts.global_batch < 1 or opts.grad_accum < 1:
        p.error("--steps, --global-batch and --grad-accum must be >= 1")
    return opts


def config_for(opts):
    cfg = get_config(opts.profile)
    return cfg if opts.task in cfg.tasks else cfg.replace(tasks=(opts.task,))


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    start = time.time()
    cfg = config_for(opts)
    state = ranks.state()
    world = state.num_processes
    if opts.mode != "evaluate" and opts.global_batch % (world * opts.grad_accum):
        raise SystemExit(f"--global-batch {opts.global_batch} is not divisible by world size {world} x "
                         f"--grad-accum {opts.grad_accum}")
    torch.set_num_threads(opts.threads or max(1, (os.cpu_count() or 1) // state.num_processes))
    if opts.mode == "evaluate":
        return evaluate_run(cfg.replace(eval_batch_size=opts.eval_batch or cfg.eval_batch_size), opts, state)
    prep = prepare(cfg, opts.mode, opts.role, opts.method, opts.task, opts.seed)
    prepared_s = time.time() - start
    with tempfile.TemporaryDirectory(prefix="scd-launch-") as scratch:  # save_strategy="no": nothing kept
        trainer, info = build_trainer(cfg, opts, prep, Path(scratch))
        t0 = time.time()
        trainer.train()
        train_s = time.time() - t0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    per_rank = gather_object([{"rank": state.process_index, "seen": trainer.seen,
                               "local_losses": trainer.local_losses,
                               "weights": fingerprint(trainer.accelerator.unwrap_model(trainer.model)),
                               "numerics": numerics.in_force()}])
    result = {
        "profile": opts.profile, "task": opts.task, "mode": opts.mode, "seed": opts.seed, **info,
        "world_size": world, "distributed_type": str(state.distributed_type), "backend": state.backend,
        "per_device_batch": opts.global_batch // (world * opts.grad_accum), "grad_accum": opts.grad_accum,
        "global_batch": opts.global_batch,
        "threads": torch.get_num_threads(),
        "steps": [h["step"] for h in logs], "losses": [h["loss"] for h in logs],
        "grad_norms": [h.get("grad_norm") for h in logs], "learning_rates": [h.get("learning_rate") for h in logs],
        "ranks": sorted(per_rank, key=lambda r: r["rank"]), "prepare_s": prepared_s, "train_s": train_s,
    }
    if state.is_main_process:
        write_json(opts.out, result)
    state.wait_for_everyone()
    return result


if __name__ == "__main__":
    main()
