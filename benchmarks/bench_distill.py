"""Cost of distillation against plain SFT, an online teacher and TRL's GKDTrainer, in one process.

    python benchmarks/bench_distill.py --profile cpu --task crade --steps 30

Same student, data and batch shapes for every trainer; ratios are taken against student SFT
measured in the same run, so machine noise largely cancels. Also measures the one-off costs
(target cache per checkpoint, top-k truncation loss, SCD probe, AW anchor) and deployment
inference of teacher vs student. Prints a table and writes results/benchmarks/<profile>_*.{csv,md}.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))  # deployment.py beside this script

import deployment  # noqa: E402
from scd.kd.targets import build_targets, bytes_per_token
from scd.core.config import get_config
from scd.kd.policies import student_probe_kl
from scd.kd.trainer import DistillTrainer, sample_weights
from scd.data.encoding import PadCollator, encode
from scd.train.evaluate import gold_losses, new_token_budget
from scd.core.io import project_path, write_table
from scd.core.methods import parse_method
from scd.train.models import answer_logits, load_model, load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.stages.store import threads
from scd.stages.distill import cache_stage
from scd.train.sft import AnswerOnlyTrainer
from scd.train.training import training_args


class Meter(TrainerCallback):
    """Whole-step times (data, forward, backward, optimiser: the interval between successive
    step ends, after warm-up steps) and peak resident memory during training."""

    def __init__(self, warmup: int = 3):
        self.warmup, self.times, self.peak, self._t = warmup, [], 0, None

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        if state.global_step > self.warmup and self._t is not None:
            self.times.append(now - self._t)
        self._t = now
        self.peak = max(self.peak, psutil.Process().memory_info().rss)
        if torch.cuda.is_available():
            self.peak_cuda = torch.cuda.max_memory_allocated()


def answer_tokens(items: list[dict]) -> int:
    return sum(len(it["input_ids"]) for it in items)


def timed_train(name: str, make_trainer, items, steps: int, batch: int) -> dict:
    meter = Meter()
    trainer = make_trainer(meter)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    step = float(pd.Series(meter.times).median())  # robust to scheduler hiccups on a shared machine
    tokens_per_step = answer_tokens(items) / len(items) * batch
    return {"trainer": name, "steps": steps, "step_s": step, "tokens_per_s": tokens_per_step / step,
            "peak_rss_mb": meter.peak / 2**20, "epoch_s_est": step * len(items) / batch, "wall_s": wall,
            "peak_cuda_mb": getattr(meter, "peak_cuda", 0) / 2**20}


def gkd_trainer(student, teacher, tok, records, cfg, out, steps, meter):
    from datasets import Dataset
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    data = Dataset.from_list([{"messages": [{"role": "user", "content": r["prompt"]},
                                            {"role": "assistant", "content": r["answer"]}]} for r in records])
    if tok.chat_template is None:  # our tiny tokenizer has none: prompt then answer, as in our SFT
        tok.chat_template = ("{% for m in messages %}{% if m.role == 'user' %}{{ m['content'] }}"
                             "{% else %}{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}"
                             "{% endif %}{% endfor %}")
    args = GKDConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=cfg.batch_size, lmbda=0.0,
                     beta=0.0, temperature=cfg.temperature, learning_rate=cfg.distill_lr, report_to=[],
                     max_length=cfg.max_length, save_strategy="no", logging_steps=10**6, use_cpu=not torch.cuda.is_available(),
                     disable_tqdm=True, seq_kd=False, dataloader_num_workers=0)
    return GKDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data, processing_class=tok,
                      callbacks=[meter])


def deploy_lengths(args) -> dict:
    return {"decode_lengths": tuple(int(x) for x in args.decode.split(",")),
            "prefill_lengths": tuple(int(x) for x in args.prefill.split(","))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--task", default="crade")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-trl", action="store_true", help="skip TRL's GKDTrainer")
    ap.add_argument("--out", default=str(project_path("results") / "benchmarks"))
    ap.add_argument("--deploy-items", type=int, default=32, help="test prompts for the latency figure")
    ap.add_argument("--decode", default="64,256", help="fixed numbers of new tokens for decode throughput")
    ap.add_argument("--prefill", default="128,256", help="fixed prompt lengths for prefill throughput")
    args = ap.parse_args(argv)
    os.environ.setdefault("SCD_QUIET", "1")
    threads()
    cfg = get_config(args.profile, tasks=args.task)
    teacher_info = sft_stage(cfg, "teacher", args.task, 0)
    student_info = sft_stage(cfg, "student", args.task, 0)
    base, _ = base_model_stage(cfg, "student")
    tok = load_tokenizer(base)
    splits = task_splits(cfg, args.task)
    train = splits["train"]
    items, _ = encode(train, tok, cfg)
    targets, _ = cache_stage(cfg, teacher_info, args.task)
    best = teacher_info.best_index
    anchor = dict(zip(*pd.read_csv(Path(student_info.path) / "anchor.csv").T.values))
    weights = sample_weights(parse_method("scd_aw"), cfg.alpha, anchor, targets[best])
    tmp = project_path("runs") / "bench"
    collate = PadCollator(tok.pad_token_id)

    def targs(name):
        return training_args(tmp / name, cfg, cfg.distill_lr, 1, 0, max_steps=args.steps, logging_steps=10**6,
                             train_sampling_strategy="random")

    rows = [timed_train("student SFT", lambda m: AnswerOnlyTrainer(
        model=load_model(base), args=targs("sft"), train_dataset=items, data_collator=collate, callbacks=[m]),
        items, args.steps, cfg.batch_size)]
    rows.append(timed_train("SCD+AW cached", lambda m: DistillTrainer(
        model=load_model(base), args=targs("cached"), train_dataset=items, data_collator=collate, callbacks=[m],
        targets=targets[best], weights=weights, divergence=cfg.divergence, top_k=cfg.top_k), items, args.steps,
        cfg.batch_size))
    teacher_model = load_model(teacher_info.best_path).eval()
    rows.append(timed_train("SCD+AW online", lambda m: DistillTrainer(
        model=load_model(base), args=targs("online"), train_dataset=items, data_collator=collate, callbacks=[m],
        teacher=teacher_model, weights=weights, divergence=cfg.divergence, top_k=cfg.top_k), items, args.steps,
        cfg.batch_size))
    if not args.no_trl:
        try:
            rows.append(timed_train("TRL GKDTrainer (FKL, offline)", lambda m: gkd_trainer(
                load_model(base), teacher_model, load_tokenizer(base), train, cfg, tmp / "gkd", args.steps, m),
                items, args.steps, cfg.batch_size))
        except ImportError as exc:
            print(f"TRL not installed ({exc}); pip install trl to include GKDTrainer", file=sys.stderr)
    train_tab = pd.DataFrame(rows)
    train_tab["step_ratio_vs_sft"] = train_tab["step_s"] / train_tab.loc[0, "step_s"]
    train_tab["speedup_of_cached"] = train_tab["step_s"] / train_tab.loc[1, "step_s"]

    # one-off costs
    start = time.perf_counter()
    t = build_targets(teacher_model, tok, train, cfg, cfg.top_k, cfg.temperature, {"quiet": True},
                      cfg.eval_batch_size)
    cache_s = time.perf_counter() - start
    probe = train[: cfg.probe_size]
    batch = collate(encode(probe, tok, cfg)[0])
    with torch.no_grad():
        tl = answer_logits(teacher_model, batch["input_ids"], batch["attention_mask"], batch["labels"])[0].float()
        sl = answer_logits(load_model(base), batch["input_ids"], batch["attention_mask"], batch["labels"])[0].float()
    from scd.kd.divergences import bucketize, forward_kl, teacher_buckets
    from scd.train.models import leftover_logmass

    tp, sp = torch.log_softmax(tl, -1), torch.log_softmax(sl, -1)
    dense = float(forward_kl(tp, sp).mean())
    top_logp, top_ids = tp.topk(cfg.top_k, -1)
    sparse = float(forward_kl(teacher_buckets(top_logp, leftover_logmass(tp, top_ids)), bucketize(sl, top_ids)).mean())
    start = time.perf_counter()
    student_probe_kl(load_model(base), tok, probe, targets, cfg, cfg.temperature)
    probe_s = time.perf_counter() - start
    start = time.perf_counter()
    gold_losses(load_model(base), tok, train, cfg)
    anchor_s = time.perf_counter() - start
    one_off = pd.DataFrame([
        {"cost": "target cache, one checkpoint", "value": cache_s, "unit": "s"},
        {"cost": "target cache size", "value": bytes_per_token(t), "unit": "bytes per answer token"},
        {"cost": f"FKL kept by top-{cfg.top_k} (+leftover)", "value": sparse / dense, "unit": "share of dense FKL"},
        {"cost": "SCD selection probe, all checkpoints, one stage", "value": probe_s, "unit": "s"},
        {"cost": "AW anchor (student gold loss on train)", "value": anchor_s, "unit": "s"},
        {"cost": "SCD selection / one epoch of cached training", "value": probe_s / (train_tab.loc[1, "epoch_s_est"]),
         "unit": "ratio"},
    ])

    # deployment: teacher vs student doing the same work (deployment)
    budget = new_token_budget(args.task, train, tok, cfg)
    deploy_tab = deployment.table({"teacher": teacher_info.best_path, "student": student_info.best_path}, tok,
                                  splits["test"][: args.deploy_items], cfg, budget, **deploy_lengths(args))
    ratio_tab = deployment.ratios(deploy_tab)
    quality = {"teacher test": teacher_info.test.primary, "student SFT test": student_info.test.primary}

    out = Path(args.out)
    machine = f"{os.cpu_count()} CPU cores, torch {torch.__version__}" + (
        f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    for name, frame in (("training", train_tab), ("one_off", one_off), ("deployment", deploy_tab),
                        ("deployment_ratios", ratio_tab)):
        write_table(out / f"{args.profile}_{args.task}_{name}", frame, floatfmt=".4g")
        print(f"\n## {name} ({args.profile}, {args.task}, {machine})\n" + frame.to_markdown(index=False, floatfmt=".4g"))
    print("\nquality:", quality)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
