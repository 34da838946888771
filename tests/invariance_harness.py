"""One optimiser step of the package's SFT or distillation trainer on a fixed batch of 16, in
this process or under ``accelerate launch``; the loss and every gradient after it are written.

    accelerate launch --multi_gpu --num_processes 2 tests/invariance_harness.py --mode distill --out grads.pt

The model is a tiny Llama built from a seed and the samples are made up (prompt and answer
lengths vary, so answer-token counts differ across samples), so it needs no data and no stage:
what is compared is how the loss pools a batch that is split over micro-steps and processes.
Distillation uses cached teacher targets (from a second tiny Llama) and AW weights that differ
per sample. The learning rate is 0 and clipping off: the gradients are read before the one
optimiser step (after DDP's all-reduce), the loss from the Trainer's own log.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

from scd.core.config import get_config
from scd.data.encoding import PadCollator
from scd.kd.targets import TeacherTargets
from scd.kd.trainer import DistillTrainer, adaptive_weights
from scd.train.models import teacher_topk
from scd.train.sft import AnswerOnlyTrainer
from scd.train.training import training_args

BATCH, VOCAB, PAD = 16, 64, 0


def tiny_llama(seed: int, hidden: int = 32) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
                                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=64, pad_token_id=PAD, tie_word_embeddings=True))


def samples() -> list[dict]:
    """16 prompt+answer items; answers of 1 to 9 tokens, so per-share token counts differ."""
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(BATCH):
        prompt = torch.randint(1, VOCAB, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        answer = torch.randint(1, VOCAB, (1 + (i * 5) % 9,), generator=g).tolist()
        items.append({"id": f"s{i:02d}", "input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    return items


def cached_targets(items: list[dict], k: int = 8) -> tuple[TeacherTargets, dict[str, float]]:
    """Top-k targets of a second tiny Llama, and AW weights from a made-up anchor (they differ per sample)."""
    teacher = tiny_llama(seed=1, hidden=48).eval()
    batch = PadCollator(PAD)(items)
    top_ids, top_logp, rest_logp, nll = teacher_topk(teacher, batch, k, 1.0)
    lengths = (batch["labels"][:, 1:] != -100).sum(1)
    offsets = torch.zeros(len(items) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    ids = [it["id"] for it in items]
    targets = TeacherTargets(ids, offsets, top_ids.to(torch.int32), top_logp, rest_logp, nll, {"checkpoint": "tiny"})
    anchor = {s: 0.5 + 0.25 * j for j, s in enumerate(ids)}
    return targets, adaptive_weights(anchor, targets.losses())


class ReadGradients(TrainerCallback):
    """The gradients the optimiser is about to apply (accumulated, all-reduced)."""

    def __init__(self):
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone().cpu() for n, p in model.named_parameters() if p.grad is not None}


def one_step(mode: str, grad_accum: int, out_dir: Path) -> dict:
    """Loss and gradients of one optimiser step over the 16 samples (``grad_accum`` micro-steps)."""
    cfg = get_config("smoke", batch_size=BATCH, grad_accum=grad_accum, max_grad_norm=0.0)
    args = training_args(out_dir, cfg, 0.0, 1, 0, max_steps=1, logging_steps=1, save_strategy="no",
                         train_sampling_strategy="sequential", disable_tqdm=True)
    items, reader = samples(), ReadGradients()
    common = dict(model=tiny_llama(seed=0), args=args, train_dataset=items, data_collator=PadCollator(PAD),
                  callbacks=[reader])
    if mode == "sft":
        trainer = AnswerOnlyTrainer(**common)
    else:
        targets, weights = cached_targets(items)
        assert len(set(weights.values())) == BATCH
        trainer = DistillTrainer(**common, targets=targets, weights=weights, divergence=cfg.divergence,
                                 temperature=1.0, top_k=8)
    trainer.train()
    (log,) = [h for h in trainer.state.log_history if "loss" in h]
    return {"loss": torch.tensor(log["loss"], dtype=torch.float64), "grads": reader.grads,
            "world_size": trainer.accelerator.num_processes,
            "per_device_batch": trainer.args.per_device_train_batch_size // trainer.accelerator.num_processes,
            "grad_accum": trainer.args.gradient_accumulation_steps}


def main(argv=None) -> None:
    from scd.core import ranks

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("sft", "distill"), required=True)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="torch.save'd result, written by rank 0")
    opts = p.parse_args(argv)
    state = ranks.state()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="scd-invariance-") as scratch:
        result = one_step(opts.mode, opts.grad_accum, Path(scratch))
    if state.is_main_process:
        torch.save(result, opts.out)
    state.wait_for_everyone()


if __name__ == "__main__":
    main()
