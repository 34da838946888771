"""Distillation on the smoke profile: the six factorial methods, SCD's selection, CD's order,
AW's formula, optimiser resets per stage, and cached == online teacher targets."""
import json
import math
from pathlib import Path

import pytest
import torch

from scd.kd.targets import load_targets
from scd.kd.trainer import DistillTrainer, adaptive_weights
from scd.data.encoding import PadCollator, encode
from scd.core.methods import get_policy, parse_method
from scd.train.models import answer_logits, load_model, load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.stages.distill import cache_stage, distill_stage
from scd.train.training import training_args

from scd.core.methods import METHODS


@pytest.fixture(scope="module")
def runs(smoke_cfg):
    return {m: distill_stage(smoke_cfg, m, "crade", 0) for m in METHODS}


@pytest.fixture(scope="module")
def teacher(smoke_cfg):
    return sft_stage(smoke_cfg, "teacher", "crade", 0)


def test_all_six_methods_run_with_equal_steps(smoke_cfg, runs):
    steps = {m: sum(s.steps for s in r.stages) for m, r in runs.items()}
    assert len(set(steps.values())) == 1 and next(iter(steps.values())) > 0
    for m, r in runs.items():
        assert len(r.stages) == smoke_cfg.n_checkpoints
        assert 0.0 <= r.test.primary <= 1.0 and r.test.n == smoke_cfg.max_eval
        assert r.best in {f"stage{s.stage}" for s in r.stages}
        assert all(math.isfinite(s.train_loss) for s in r.stages)
        assert Path(r.path, "test.csv").is_file()
    student = sft_stage(smoke_cfg, "student", "crade", 0)  # the baseline: as many optimiser steps as each method
    assert student.trajectory[-1].step == next(iter(steps.values()))


def test_students_per_teacher_share_one_teacher_run_and_train_their_own(smoke_cfg, runs, teacher):
    cfg = smoke_cfg.replace(students_per_teacher=2)
    assert [cfg.teacher_seed(s) for s in range(5)] == [0, 0, 1, 1, 2]
    assert sft_stage(cfg, "teacher", "crade", 1).path == teacher.path  # seed 1 distils from seed 0's teacher
    other = distill_stage(cfg, "td", "crade", 1)
    assert other.path != runs["td"].path and other.cache == runs["td"].cache  # the same teacher targets
    import pandas as pd
    from scd.analysis.export import stage_seconds, unique_stages

    records = {(m, "crade", s): sft_stage(cfg, m.split("_")[0], "crade", s) if m.endswith("_sft") else r
               for m, s, r in [("teacher_sft", 0, None), ("student_sft", 0, None), ("td", 0, runs["td"]),
                               ("teacher_sft", 1, None), ("student_sft", 1, None), ("td", 1, other)]}
    rows = pd.DataFrame([{"model": m, "task": t, "seed": s} for m, t, s in records])
    secs = stage_seconds(cfg, rows, records)
    assert len(secs) == 8 and set(secs[secs.model == "teacher_sft"].stage_seed) == {0}  # listed under both seeds
    once = unique_stages(secs)  # counted once: one teacher, one cache, two students, two distillations
    assert len(once) == 6 and once[once.model == "teacher_sft"].seconds.item() == teacher.train_s + teacher.eval_s


def test_policies_pick_the_right_checkpoints(runs, teacher):
    n = len(teacher.trajectory)
    for m in ("td", "td_aw"):
        assert [s.checkpoint for s in runs[m].stages] == [teacher.best] * n
    for m in ("cd", "cd_aw"):
        assert [s.checkpoint for s in runs[m].stages] == [f"ckpt{i}" for i in range(n)]
    for m in ("scd", "scd_aw"):
        for s in runs[m].stages:
            assert s.checkpoint_index == min(range(n), key=lambda c: s.candidate_scores[c])


def test_scd_selection_matches_an_independent_computation(smoke_cfg, runs, teacher):
    """Recompute KL(p_best||p_c) + KL(p_student||p_c) from the models themselves."""
    run = runs["scd"]
    tok = load_tokenizer(teacher.best_path)
    probe = task_splits(smoke_cfg, "crade")["train"][: smoke_cfg.probe_size]
    batch = PadCollator(tok.pad_token_id)(encode(probe, tok, smoke_cfg)[0])

    def logp(model):
        with torch.no_grad():
            logits = answer_logits(model.eval(), batch["input_ids"], batch["attention_mask"], batch["labels"])[0]
        return torch.log_softmax(logits.double(), -1)

    teachers = [logp(load_model(t.path)) for t in teacher.trajectory]
    best = teachers[[t.checkpoint for t in teacher.trajectory].index(teacher.best)]
    students = [logp(load_model(base_model_stage(smoke_cfg, "student")[0]))] + \
        [logp(load_model(Path(run.path, f"stage{s}", "model"))) for s in range(len(run.stages) - 1)]
    for stage, student in zip(run.stages, students):
        scores = []
        for c in teachers:
            kl_best = (best.exp() * (best - c)).sum(-1).mean()
            top = c.topk(smoke_cfg.top_k, -1).indices
            p_s = student.exp().gather(-1, top)
            p_c = c.exp().gather(-1, top)
            p_s = torch.cat([p_s, (1 - p_s.sum(-1, keepdim=True)).clamp_min(1e-30)], -1)
            p_c = torch.cat([p_c, (1 - p_c.sum(-1, keepdim=True)).clamp_min(1e-30)], -1)
            scores.append(float(kl_best + (p_s * (p_s.log() - p_c.log())).sum(-1).mean()))
        assert stage.candidate_scores == pytest.approx(scores, rel=1e-3, abs=1e-5)
        assert stage.checkpoint_index == min(range(len(scores)), key=scores.__getitem__)


def test_policy_rules():
    assert get_policy("td").choose(2, best=1, scores=None, n=3) == 1
    assert [get_policy("cd").choose(s, best=1, scores=None, n=3) for s in range(3)] == [0, 1, 2]
    assert get_policy("scd").choose(0, best=0, scores=[0.3, 0.1, 0.2], n=3) == 1
    with pytest.raises(ValueError, match="needs 3 candidate scores"):
        get_policy("scd").choose(0, best=0, scores=None, n=3)
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("scd_xx")


def test_adaptive_weights_equal_the_formula():
    anchor = {"a": 1.0, "b": 3.0, "c": 0.5}
    target = {"a": 1.0, "b": 1.0, "c": 2.0}
    w = adaptive_weights(anchor, target)
    for i in anchor:
        assert w[i] == pytest.approx(1 / (1 + math.exp(-math.log(anchor[i] / target[i]))))
    assert w == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.2})
    with pytest.raises(ValueError, match="no loss for samples"):
        adaptive_weights({"a": 1.0}, target)


def test_aw_weights_logged_match_anchor_and_checkpoint_losses(smoke_cfg, runs, teacher):
    import pandas as pd

    student = sft_stage(smoke_cfg, "student", "crade", 0)
    anchor = pd.read_csv(Path(student.path, "anchor.csv")).set_index("id")["loss"]
    run = runs["scd_aw"]
    best_stage = next(s for s in run.stages if f"stage{s.stage}" == run.best)
    targets, _ = cache_stage(smoke_cfg, teacher, "crade")
    losses = targets[best_stage.checkpoint_index].losses()
    logged = json.loads(Path(run.path, "weights.json").read_text())
    for sid, w in logged.items():
        assert w == pytest.approx(anchor[sid] / (anchor[sid] + losses[sid]))


def test_optimizer_and_schedule_reset_at_every_stage(runs):
    run = runs["scd"]
    steps_per_stage = run.stages[0].steps
    for s in range(len(run.stages)):
        ckpts = sorted(Path(run.path, f"stage{s}", "trainer").glob("checkpoint-*"),
                       key=lambda p: int(p.name.split("-")[1]))
        state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
        assert state["global_step"] == steps_per_stage  # not cumulative: a new Trainer per stage
        opt = torch.load(ckpts[-1] / "optimizer.pt", weights_only=False)
        assert {int(v["step"]) for v in opt["state"].values()} == {steps_per_stage}


def test_cached_and_online_targets_give_the_same_loss(smoke_cfg, teacher, tmp_path):
    targets, _ = cache_stage(smoke_cfg, teacher, "crade")
    ckpt = teacher.trajectory[0]
    assert targets[0].meta["checkpoint"] == ckpt.checkpoint
    tok = load_tokenizer(ckpt.path)
    student = load_model(base_model_stage(smoke_cfg, "student")[0])
    train = task_splits(smoke_cfg, "crade")["train"][:6]
    batch = PadCollator(tok.pad_token_id)(encode(train, tok, smoke_cfg)[0])
    weights = {r["id"]: 0.7 for r in train}
    common = dict(model=student, args=training_args(tmp_path, smoke_cfg, 1e-3, 1, 0), weights=weights,
                  top_k=smoke_cfg.top_k)
    cached = DistillTrainer(targets=targets[0], **common).compute_loss(student, dict(batch))
    online = DistillTrainer(teacher=load_model(ckpt.path).eval(), **common).compute_loss(student, dict(batch))
    assert float(cached) == pytest.approx(float(online), rel=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        DistillTrainer(**common)


def test_kd_ce_and_weight_are_logged_and_make_the_loss(smoke_cfg, teacher, tmp_path):
    targets, _ = cache_stage(smoke_cfg, teacher, "crade")
    tok = load_tokenizer(teacher.trajectory[0].path)
    train = task_splits(smoke_cfg, "crade")["train"][:8]
    items, _ = encode(train, tok, smoke_cfg)
    args = training_args(tmp_path, smoke_cfg, 1e-3, 1, 0, logging_steps=1)
    trainer = DistillTrainer(model=load_model(base_model_stage(smoke_cfg, "student")[0]), args=args,
                             train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
                             targets=targets[0], weights={r["id"]: 0.7 for r in train}, top_k=smoke_cfg.top_k)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2  # 8 items, batch 4
    for h in logs:
        assert h["w_mean"] == pytest.approx(0.7) and h["kd"] > 0 and h["ce"] > 0
        assert h["loss"] == pytest.approx(0.7 * h["kd"] + 0.3 * h["ce"], abs=1e-3)


def test_cache_refuses_a_mismatched_build(smoke_cfg, teacher):
    from scd.kd.targets import CacheMismatch

    targets, _ = cache_stage(smoke_cfg, teacher, "crade")
    with pytest.raises(CacheMismatch, match="tokenizer_hash"):
        targets[0].check({"tokenizer_hash": "someothervocab"})
    with pytest.raises(CacheMismatch, match="no entry"):
        targets[0].lookup(["crade/unknown:1"])
    blob = Path(targets[0].meta["checkpoint_path"])
    assert blob.exists()
    bad = Path(str(blob) + ".broken.pt")
    bad.write_bytes(b"truncated")
    with pytest.raises(CacheMismatch, match="unreadable"):
        load_targets(bad)


def test_cache_parts_of_ranks_join_to_the_one_process_build(smoke_cfg, teacher):
    """What each of W ranks builds (every W-th item) joins to exactly the single-process cache."""
    from scd.kd.targets import CacheMismatch, build_targets, join_targets

    ckpt = teacher.trajectory[-1]
    tok, model = load_tokenizer(ckpt.path), load_model(ckpt.path)
    train = task_splits(smoke_cfg, "crade")["train"]
    meta = {"checkpoint": ckpt.checkpoint, "quiet": True}
    whole = build_targets(model, tok, train, smoke_cfg, 4, 1.0, meta, batch_size=1)
    parts = [build_targets(model, tok, train[r::3], smoke_cfg, 4, 1.0, meta, batch_size=1) for r in range(3)]
    joined = join_targets(parts, [r["id"] for r in train])
    assert joined.sample_ids == whole.sample_ids and joined.meta == whole.meta
    for name in ("offsets", "topk_ids", "topk_logp", "gold_loss"):
        assert torch.equal(getattr(joined, name), getattr(whole, name)), name
    with pytest.raises(CacheMismatch, match="missing"):
        join_targets(parts[:2], [r["id"] for r in train])


def test_stratified_probe_follows_the_train_label_mix(smoke_cfg):
    from collections import Counter

    from scd.data.splits import load_splits
    from scd.stages.distill import probe_records

    train = load_splits("crade", max_train=400)["train"]
    cfg = smoke_cfg.replace(probe_size=40, probe_sampling="stratified")
    probe = probe_records(cfg, train)
    mix, want = Counter(r["label"] for r in probe), Counter(r["label"] for r in train)
    assert len(probe) == 40 and all(abs(mix[k] - 40 * v / len(train)) < 1 for k, v in want.items())
    assert probe == probe_records(cfg, train) and probe_records(smoke_cfg.replace(probe_size=40), train) == train[:40]


def dense_buckets(model, batch: dict, ids: torch.Tensor) -> torch.Tensor:
    """The model's float64 log-probs on the top-k ``ids`` of each answer position and the log-mass
    of every other id, from its dense logits over the whole vocabulary: what a target cache's
    ``topk_logp`` and ``rest_logp`` must equal (also used by test_gemma on the 262k vocabulary)."""
    with torch.no_grad():
        logits = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])[0]
    lp = torch.log_softmax(logits.double(), -1)
    tail = torch.logsumexp(lp.scatter(-1, ids, float("-inf")), -1, keepdim=True)
    return torch.cat([lp.gather(-1, ids), tail], -1)


def test_scd_probe_matches_dense_kl_for_a_sharp_teacher(smoke_cfg, teacher):
    """The smoke teacher made sharp (final norm × 60): its top-k holds nearly all the mass, so
    ``1 - sum p`` rounds to 0 on many rows; the cache's exact leftover keeps the SCD probe's
    KL(p_student || p_c) equal to the dense float64 value on the same buckets."""
    from scd.kd.targets import build_targets
    from scd.kd.policies import student_probe_kl
    from scd.kd.divergences import teacher_buckets

    tok = load_tokenizer(teacher.best_path)
    sharp = load_model(teacher.best_path).eval()
    with torch.no_grad():
        sharp.model.norm.weight.mul_(60.0)
    student = load_model(base_model_stage(smoke_cfg, "student")[0]).eval()
    probe = task_splits(smoke_cfg, "crade")["train"][: smoke_cfg.probe_size]
    targets = build_targets(sharp, tok, probe, smoke_cfg, smoke_cfg.top_k, 1.0, {"quiet": True})
    ids, logp, rest = targets.lookup([r["id"] for r in probe])
    assert torch.isneginf(teacher_buckets(logp)[:, -1]).any() and torch.isfinite(rest).all()
    batch = PadCollator(tok.pad_token_id)(encode(probe, tok, smoke_cfg)[0])
    s, t = dense_buckets(student, batch, ids), dense_buckets(sharp, batch, ids)
    want = float((s.exp() * (s - t)).sum(-1).mean())
    (got,) = student_probe_kl(student, tok, probe, [targets], smoke_cfg, 1.0)
    assert got == pytest.approx(want, rel=1e-4)
