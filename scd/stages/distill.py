"""Distillation stages on top of the SFT stages: the target cache, then N stages of T epochs.

Compute-or-load like ``scd.stages.base_sft``: a finished cache or stage is never redone, and an
interrupted stage resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scd.core import ranks
from scd.kd.targets import build_targets, join_targets, load_targets, save_targets
from scd.core.config import Config
from scd.data.sampling import DATA_SEED, stratified_take
from scd.kd.policies import dense_probe_kl, probe_scores, student_probe_kl
from scd.kd.trainer import DistillTrainer, sample_weights
from scd.data.encoding import PadCollator, encode
from scd.train.evaluate import evaluate, new_token_budget
from scd.core.io import read_json, write_csv, write_json
from scd.core.methods import parse_method
from scd.train.models import (answer_logits, default_device, device_of, inference_dtype, kd_vocab, load_for_training,
                        load_model, load_tokenizer, model_inputs)
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.core.records import CacheRecord, DistillRecord, Scores, SFTRecord, StageRecord, best_of
from scd.stages.store import compute_or_load, stage_dir, stage_key
from scd.train.training import training_args


def check_shared_vocabulary(teacher, student_sft) -> None:
    """Teacher and student records (base LM or SFT) must share one tokenizer: KD compares their
    distributions token by token (over the tokenizer's ids: embedding rows past it, which hub
    models pad to different sizes, are left out, see ``scd.train.models.kd_vocab``)."""
    if student_sft.tokenizer_hash != teacher.tokenizer_hash:
        raise ValueError(f"teacher and student use different tokenizers ({teacher.tokenizer_hash} vs "
                         f"{student_sft.tokenizer_hash}): distillation needs one shared vocabulary")


def probe_records(cfg: Config, train: list[dict]) -> list[dict]:
    """SCD's selection probe: the first ``probe_size`` train items in file order, or a seeded
    label-stratified sample of them (``probe_sampling="stratified"``: file order can be skewed,
    e.g. CRADE's first 32 items are 14 "D" where train is 9.5% "D")."""
    if cfg.probe_sampling == "first" or len(train) <= cfg.probe_size:
        return train[: cfg.probe_size]
    return [train[i] for i in stratified_take([r["label"] for r in train], cfg.probe_size, DATA_SEED + 4)]


def cache_key(cfg: Config, teacher: SFTRecord) -> dict:
    return stage_key(cfg, "cache", teacher=teacher.key, leftover="exact")


def cache_stage(cfg: Config, teacher: SFTRecord, task: str, data_root=None) -> tuple[list, CacheRecord]:
    """Top-k targets of every teacher checkpoint on the train split, and KL(best || c) on the probe.

    Under ``accelerate launch`` each rank holds the teacher checkpoint (bf16 on a GPU profile: 16 GB
    for the 8B teacher) and builds the targets of every W-th train item; rank 0 joins the parts in
    item order, so a rank reads exactly what one process would have built."""
    key = cache_key(cfg, teacher)
    path = stage_dir(cfg, key, "cache", task, f"s{teacher.seed}")
    tok = load_tokenizer(teacher.best_path)
    expected = {"tokenizer_hash": teacher.tokenizer_hash, "k": cfg.top_k, "temperature": cfg.temperature,
                "max_length": cfg.max_length, "answer_reserve": cfg.max_new_tokens}
    missing = [t.path for t in teacher.trajectory if not Path(t.path).is_dir()]

    def build(path):
        if missing:
            raise FileNotFoundError(f"teacher checkpoints {missing} are missing; delete {teacher.path} to retrain "
                                    "the teacher (its done.json says they exist)")
        splits = task_splits(cfg, task, data_root)  # only here: a done cache needs no data
        start, dense = time.time(), []
        shard = splits["train"][ranks.rank()::ranks.world_size()]
        for t in teacher.trajectory:
            model = load_model(t.path, inference_dtype(cfg)).eval()
            meta = {"checkpoint": t.checkpoint, "checkpoint_path": t.path, "task": task, "quiet": True} | expected
            save_targets(build_targets(model, tok, shard, cfg, cfg.top_k, cfg.temperature, meta, cfg.eval_batch_size),
                         path / f"{t.checkpoint}.rank{ranks.rank()}.pt")
            if ranks.is_main():
                dense.append(probe_logits(cfg, model, tok, splits["train"]))
        ranks.barrier()
        if not ranks.is_main():
            return None
        for t in teacher.trajectory:
            parts = [path / f"{t.checkpoint}.rank{r}.pt" for r in range(ranks.world_size())]
            joined = join_targets([load_targets(p) for p in parts], [r["id"] for r in splits["train"]])
            save_targets(joined, path / f"{t.checkpoint}.pt")
            for p in parts:
                p.unlink()
        kl_best = [dense_probe_kl(dense[teacher.best_index], d, cfg.temperature) for d in dense]
        return CacheRecord(key=key, kl_from_best=kl_best, build_s=time.time() - start,
                           probe_tokens=int(dense[0].shape[0]), world_size=ranks.world_size())
    record = compute_or_load(path, CacheRecord, build)
    return [load_targets(path / f"{t.checkpoint}.pt").check(expected) for t in teacher.trajectory], record


def probe_logits(cfg: Config, model, tok, train: list[dict]) -> torch.Tensor:
    """Dense teacher logits on the probe's answer tokens, kept on the CPU: [tokens, vocabulary]."""
    probe, _ = encode(probe_records(cfg, train), tok, cfg)
    with torch.no_grad():
        return answer_logits(model, *model_inputs(PadCollator(tok.pad_token_id)(probe), model),
                             vocab=kd_vocab(tok))[0].float().cpu()


def weight_stats(weights: dict[str, float]) -> dict:
    w = np.array(list(weights.values()))
    return {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()), "max": float(w.max()),
            "q10": float(np.quantile(w, 0.1)), "q50": float(np.median(w)), "q90": float(np.quantile(w, 0.9))}


def stage_plan(cfg: Config, method, stage: int, model, tok, train: list[dict], targets: list, kl_best: list[float],
               best: int, anchor: dict[str, float]) -> tuple[int, list[float] | None, dict[str, float]]:
    """What stage ``stage`` distils from: (checkpoint index, candidate scores, sample weights); the
    scores (SCD's probe) only for a policy that ``needs_probe``, None otherwise (``stage_choice``
    also returns the probe's student term)."""
    chosen, scores, _, weights = stage_choice(cfg, method, stage, model, tok, train, targets, kl_best, best, anchor)
    return chosen, scores, weights


def stage_choice(cfg: Config, method, stage: int, model, tok, train: list[dict], targets: list,
                 kl_best: list[float], best: int, anchor: dict[str, float]
                 ) -> tuple[int, list[float] | None, list[float] | None, dict[str, float]]:
    """``stage_plan`` with the probe's student term: (checkpoint index, candidate scores,
    KL(p_student||p_c) per candidate, sample weights); both lists None without a probe.

    The student probe runs on rank 0, which holds the whole model even under FSDP's RAM-efficient
    loading (where transformers implements it, the other ranks' weights are meta tensors until the
    Trainer wraps the model), and
    every rank gets its scores. A model left on the CPU by that loading path visits the GPU for
    the probe and goes back, so FSDP still finds it where it expects it."""
    def probe():
        home, there = device_of(model), default_device()
        try:
            return student_probe_kl(model.to(there), tok, probe_records(cfg, train), targets, cfg, cfg.temperature)
        finally:
            model.to(home)

    scores = kl_student = None
    if method.policy.needs_probe:
        kl_student = [float(v) for v in ranks.from_main(probe)]
        scores = probe_scores(cfg.selection_terms, kl_best, kl_student)
    chosen = method.policy.choose(stage, best, scores, len(targets))
    return chosen, scores, kl_student, sample_weights(method, cfg.alpha, anchor, targets[chosen])


def read_anchor(student_sft: SFTRecord) -> dict[str, float]:
    return pd.read_csv(student_sft.anchor_path, dtype={"id": str}).set_index("id")["loss"].to_dict()


def distill_trainer(cfg: Config, model, tok, items: list[dict], targets, weights: dict[str, float], args,
                    trainer_cls=DistillTrainer) -> DistillTrainer:
    """The distillation trainer of one stage, with the loss the config names."""
    return trainer_cls(model=model, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
                       processing_class=tok, targets=targets, weights=weights, divergence=cfg.divergence,
                       temperature=cfg.temperature, top_k=cfg.top_k, divergence_params=cfg.divergence_params(),
                       vocab=kd_vocab(tok))


def distill_stage(cfg: Config, method_name: str, task: str, seed: int, data_root=None) -> DistillRecord:
    """N stages of T epochs; each starts from the previous stage's saved model (the base student
    first), so a stage resumes alone and every rank of a launch starts from the same weights."""
    method = parse_method(method_name)
    teacher = sft_stage(cfg, "teacher", task, seed, data_root)
    student_sft = sft_stage(cfg, "student", task, seed, data_root)
    base_path, _ = base_model_stage(cfg, "student", data_root)
    check_shared_vocabulary(teacher, student_sft)
    key = stage_key(cfg, "distill", cache=cache_key(cfg, teacher), student=student_sft.key, method=method.name,
                    seed=seed)

    def build(path):
        targets, cache = cache_stage(cfg, teacher, task, data_root)
        splits = task_splits(cfg, task, data_root)
        tok = load_tokenizer(base_path)
        anchor = read_anchor(student_sft)
        items, _ = encode(splits["train"], tok, cfg)
        budget = new_token_budget(task, splits["train"], tok, cfg)
        start_from, stages = base_path, []
        for s in range(cfg.n_checkpoints):
            def train_stage(sdir, s=s, start_from=start_from):
                start = time.time()
                model = load_for_training(start_from)
                chosen, scores, kl_student, weights = stage_choice(cfg, method, s, model, tok, splits["train"],
                                                                   targets, cache.kl_from_best, teacher.best_index,
                                                                   anchor)
                select_s = time.time() - start
                args = training_args(sdir / "trainer", cfg, cfg.distill_lr, cfg.stage_epochs, seed * 1000 + s,
                                     save_strategy="epoch", train_sampling_strategy="group_by_length")
                trainer = distill_trainer(cfg, model, tok, items, targets[chosen], weights, args)
                result, before = trainer.train_or_resume()
                train_s = time.time() - start - select_s + before
                trainer.save_model(str(sdir / "model"))
                ranks.barrier()  # the saved model is complete before any rank loads it
                dev, rows = evaluate(load_model(sdir / "model", inference_dtype(cfg)), tok, splits["dev"], task, cfg,
                                     budget, desc=f"{method.name} stage{s} dev")  # every rank a share
                if not ranks.is_main():
                    return None
                write_json(sdir / "weights.json", weights)
                write_csv(sdir / "dev.csv", rows)
                return StageRecord(stage=s, checkpoint=teacher.trajectory[chosen].checkpoint, checkpoint_index=chosen,
                                   candidate_scores=scores, kl_from_best=cache.kl_from_best, kl_student=kl_student,
                                   weights=weight_stats(weights), select_s=select_s, train_s=train_s,
                                   eval_s=time.time() - start - select_s - train_s, steps=result.global_step,
                                   train_loss=result.training_loss, dev=Scores(**dev))
            stages.append(compute_or_load(path / f"stage{s}", StageRecord, train_stage))
            start_from = path / f"stage{s}" / "model"
        best = best_of(stages, dev=lambda st: st.dev, order=lambda st: st.stage)
        final = load_model(path / f"stage{best.stage}" / "model", inference_dtype(cfg))
        test, rows = evaluate(final, tok, splits["test"], task, cfg, budget, desc=f"{method.name} test")
        if not ranks.is_main():
            return None
        write_csv(path / "test.csv", rows)
        write_json(path / "weights.json", read_json(path / f"stage{best.stage}" / "weights.json"))
        return DistillRecord(key=key, method=method.name, task=task, seed=seed, path=str(path), stages=stages,
                             best=f"stage{best.stage}", test=Scores(**test), cache=cache,
                             train_s=sum(st.train_s for st in stages), select_s=sum(st.select_s for st in stages),
                             world_size=ranks.world_size())
    return compute_or_load(stage_dir(cfg, key, "distill", method.name, task, f"s{seed}"), DistillRecord, build)
