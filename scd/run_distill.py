"""Distillation stages on top of the SFT stages: the target cache, then N stages of T epochs.

Compute-or-load like ``scd.pipeline``: a finished cache or stage is never redone, and an
interrupted stage resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scd import ranks
from scd.cache import build_targets, join_targets, load_targets, save_targets
from scd.config import Config
from scd.distill import DistillTrainer, dense_probe_kl, sample_weights, select_checkpoint, student_probe_kl
from scd.encoding import PadCollator, encode
from scd.evaluate import evaluate, new_token_budget
from scd.io import read_json, write_csv, write_json
from scd.methods import parse_method
from scd.models import answer_logits, inference_dtype, load_model, load_tokenizer, model_inputs
from scd.pipeline import base_model_stage, is_done, sft_stage, stage_dir, task_splits, threads
from scd.sft import last_checkpoint, training_args

DISTILL_KEYS = ("distill_lr", "stage_epochs", "divergence", "temperature", "alpha", "probe_size", "top_k")


def best_index(teacher: dict) -> int:
    """Position of the best (dev-selected) checkpoint in the teacher's trajectory."""
    return [t["checkpoint"] for t in teacher["trajectory"]].index(teacher["best"])


def check_shared_vocabulary(teacher: dict, student_sft: dict) -> None:
    if student_sft["tokenizer_hash"] != teacher["tokenizer_hash"]:
        raise ValueError(f"teacher and student use different tokenizers ({teacher['tokenizer_hash']} vs "
                         f"{student_sft['tokenizer_hash']}): distillation needs one shared vocabulary")


def probe_records(cfg: Config, train: list[dict]) -> list[dict]:
    return train[: cfg.probe_size]


def cache_stage(cfg: Config, teacher: dict, task: str, root=None) -> tuple[list, list[float], dict]:
    """Top-k targets of every teacher checkpoint on the train split, and KL(best || c) on the probe.

    Under ``accelerate launch`` each rank holds the teacher checkpoint (bf16 on a GPU profile: 16 GB
    for the 8B teacher) and builds the targets of every W-th train item; rank 0 joins the parts in
    item order, so a rank reads exactly what one process would have built."""
    key = {"teacher": teacher["key"], "top_k": cfg.top_k, "temperature": cfg.temperature,
           "probe_size": cfg.probe_size}
    path = stage_dir(cfg, "cache", key)
    splits = task_splits(cfg, task, root)
    tok = load_tokenizer(teacher["best_path"])
    expected = {"tokenizer_hash": teacher["tokenizer_hash"], "k": cfg.top_k, "temperature": cfg.temperature,
                "max_length": cfg.max_length, "answer_reserve": cfg.max_new_tokens}
    missing = [t["path"] for t in teacher["trajectory"] if not Path(t["path"]).is_dir()]
    if missing and not is_done(path):
        raise FileNotFoundError(f"teacher checkpoints {missing} are missing; delete {teacher['path']} to retrain "
                                "the teacher (its done.json says they exist)")
    if not is_done(path):
        threads()
        start, dense = time.time(), []
        shard = splits["train"][ranks.rank()::ranks.world_size()]
        for t in teacher["trajectory"]:
            model = load_model(t["path"], inference_dtype(cfg)).eval()
            meta = {"checkpoint": t["checkpoint"], "checkpoint_path": t["path"], "task": task, "quiet": True} | expected
            part = path / f"{t['checkpoint']}.rank{ranks.rank()}.pt"
            save_targets(build_targets(model, tok, shard, cfg, cfg.top_k, cfg.temperature, meta,
                                       cfg.eval_batch_size), part)
            if ranks.is_main():
                dense.append(_probe_logits(cfg, model, tok, splits["train"]))
        ranks.barrier()
        if ranks.is_main():
            for t in teacher["trajectory"]:
                parts = [path / f"{t['checkpoint']}.rank{r}.pt" for r in range(ranks.world_size())]
                joined = join_targets([load_targets(p) for p in parts], [r["id"] for r in splits["train"]])
                save_targets(joined, path / f"{t['checkpoint']}.pt")
                for p in parts:
                    p.unlink()
            kl_best = [dense_probe_kl(dense[best_index(teacher)], d, cfg.temperature) for d in dense]
            write_json(path / "done.json", {"key": key, "kl_from_best": kl_best, "build_s": time.time() - start,
                                            "probe_tokens": int(dense[0].shape[0]), "world_size": ranks.world_size()})
        ranks.barrier()
    info = read_json(path / "done.json")
    targets = [load_targets(path / f"{t['checkpoint']}.pt").check(expected) for t in teacher["trajectory"]]
    return targets, info["kl_from_best"], info


def _probe_logits(cfg: Config, model, tok, train: list[dict]) -> torch.Tensor:
    """Dense teacher logits on the probe's answer tokens, kept on the CPU: [tokens, vocabulary]."""
    probe, _ = encode(probe_records(cfg, train), tok, cfg)
    with torch.no_grad():
        return answer_logits(model, *model_inputs(PadCollator(tok.pad_token_id)(probe), model))[0].float().cpu()


def weight_stats(weights: dict[str, float]) -> dict:
    w = np.array(list(weights.values()))
    return {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()), "max": float(w.max()),
            "q10": float(np.quantile(w, 0.1)), "q50": float(np.median(w)), "q90": float(np.quantile(w, 0.9))}


def stage_plan(cfg: Config, method, stage: int, model, tok, train: list[dict], targets: list, kl_best: list[float],
               best: int, anchor: dict[str, float]) -> tuple[int, list[float] | None, dict[str, float]]:
    """What stage ``stage`` distils from: (checkpoint index, SCD candidate scores, sample weights).

    Deterministic given the model, so every rank of a launch computes the same plan by itself."""
    scores = None
    if method.policy == "scd":
        use_best, use_student = cfg.selection_terms in ("both", "best"), cfg.selection_terms in ("both", "student")
        kl_student = student_probe_kl(model, tok, probe_records(cfg, train), targets, cfg, cfg.temperature)
        scores = [use_best * kl_best[c] + use_student * kl_student[c] for c in range(len(targets))]
    chosen = select_checkpoint(method.policy, stage, best, scores)
    return chosen, scores, sample_weights(method, cfg.alpha, anchor, targets[chosen])


def read_anchor(student_sft: dict) -> dict[str, float]:
    return pd.read_csv(f"{student_sft['path']}/anchor.csv", dtype={"id": str}).set_index("id")["loss"].to_dict()


def distill_stage(cfg: Config, method_name: str, task: str, seed: int, root=None) -> dict:
    """N stages of T epochs; each starts from the previous stage's saved model (the base student
    first), so a stage resumes alone and every rank of a launch starts from the same weights."""
    method = parse_method(method_name)
    teacher = sft_stage(cfg, "teacher", task, seed, root)
    student_sft = sft_stage(cfg, "student", task, seed, root)
    base_path, _ = base_model_stage(cfg, "student", root)
    check_shared_vocabulary(teacher, student_sft)
    key = {"teacher": teacher["key"], "student": student_sft["key"], "method": method.name, "seed": seed,
           "selection_terms": cfg.selection_terms if method.policy == "scd" else None} | \
        {k: getattr(cfg, k) for k in DISTILL_KEYS}
    path = stage_dir(cfg, f"distill-{method.name}", key)
    if is_done(path):
        return read_json(path / "done.json")
    threads()
    targets, kl_best, cache_info = cache_stage(cfg, teacher, task, root)
    splits = task_splits(cfg, task, root)
    tok = load_tokenizer(base_path)
    anchor = read_anchor(student_sft)
    items, _ = encode(splits["train"], tok, cfg)
    budget = new_token_budget(task, splits["train"], tok, cfg)
    best = best_index(teacher)
    start_from, stages = base_path, []
    for s in range(cfg.n_checkpoints):
        sdir = path / f"stage{s}"
        if not is_done(sdir):
            start = time.time()
            model = load_model(start_from)
            chosen, scores, weights = stage_plan(cfg, method, s, model, tok, splits["train"], targets, kl_best,
                                                 best, anchor)
            select_s = time.time() - start
            trainer = DistillTrainer(
                model=model, args=training_args(sdir / "trainer", cfg, cfg.distill_lr, cfg.stage_epochs,
                                                seed * 1000 + s, save_strategy="epoch",
                                                train_sampling_strategy="group_by_length"),
                train_dataset=items, data_collator=PadCollator(tok.pad_token_id), processing_class=tok,
                targets=targets[chosen], weights=weights, divergence=cfg.divergence, temperature=cfg.temperature,
                top_k=cfg.top_k)
            last = last_checkpoint(sdir / "trainer")
            result = trainer.train(resume_from_checkpoint=str(last) if last else None)
            train_s = time.time() - start - select_s
            trainer.save_model(str(sdir / "model"))
            if ranks.is_main():
                write_json(sdir / "weights.json", weights)
                dev, rows = evaluate(load_model(sdir / "model", inference_dtype(cfg)), tok, splits["dev"], task, cfg,
                                     budget, desc=f"{method.name} stage{s} dev")
                write_csv(sdir / "dev.csv", rows)
                write_json(sdir / "done.json", {
                    "stage": s, "checkpoint": teacher["trajectory"][chosen]["checkpoint"], "checkpoint_index": chosen,
                    "candidate_scores": scores, "kl_from_best": kl_best, "weights": weight_stats(weights),
                    "select_s": select_s, "train_s": train_s, "eval_s": time.time() - start - select_s - train_s,
                    "steps": result.global_step, "train_loss": result.training_loss, "dev": dev})
            ranks.barrier()
        stages.append(read_json(sdir / "done.json"))
        start_from = sdir / "model"
    if ranks.is_main():
        best_stage = max(stages, key=lambda st: (st["dev"]["selection"], -st["dev"]["gold_loss"], st["stage"]))
        final = load_model(path / f"stage{best_stage['stage']}" / "model", inference_dtype(cfg))
        test, rows = evaluate(final, tok, splits["test"], task, cfg, budget, desc=f"{method.name} test")
        write_csv(path / "test.csv", rows)
        write_json(path / "weights.json", read_json(path / f"stage{best_stage['stage']}" / "weights.json"))
        write_json(path / "done.json", {
            "key": key, "method": method.name, "task": task, "seed": seed, "path": str(path), "stages": stages,
            "best": f"stage{best_stage['stage']}", "test": test, "cache": cache_info,
            "train_s": sum(st["train_s"] for st in stages), "select_s": sum(st["select_s"] for st in stages),
            "world_size": ranks.world_size()})
    ranks.barrier()
    return read_json(path / "done.json")
