"""One optimiser step gives the same loss and gradients however its global batch of 16 is taken:
at once, as 4 x 4 gradient accumulation, or as 2 processes x 8 (float order aside).

Per-sample weights (AW) and token pooling (SFT's mean over the batch's answer tokens) are where a
split batch goes wrong: a mean of per-share means weights the items of a small share more. The
samples have answers of different lengths, so the shares' token counts differ (checked).
The runs: ``tests/invariance_harness.py`` (tiny Llamas, no data or stages needed).
"""
from pathlib import Path

import pytest
import torch

from invariance_harness import BATCH, one_step, samples
from scd.core.config import get_config
from scd.data.encoding import PadCollator
from scd.stages.store import stage_key
from scd.train.training import training_args

RTOL = 1e-5
HARNESS = str(Path(__file__).with_name("invariance_harness.py"))
_reference: dict = {}


def reference(mode: str, tmp_path: Path) -> dict:
    """The whole batch in one micro-step, one process (computed once per mode)."""
    if mode not in _reference:
        _reference[mode] = one_step(mode, 1, tmp_path / "reference")
    return _reference[mode]


def differences(a: dict, b: dict) -> dict:
    """Max abs / rel difference of the loss and of the gradients (rel: over the largest gradient entry)."""
    assert a["grads"].keys() == b["grads"].keys() and a["grads"]
    grad_abs = max(float((a["grads"][n] - b["grads"][n]).abs().max()) for n in a["grads"])
    scale = max(float(g.abs().max()) for g in a["grads"].values())
    loss_abs = float((a["loss"] - b["loss"]).abs())
    return {"loss_abs": loss_abs, "loss_rel": loss_abs / float(a["loss"].abs()), "grad_abs": grad_abs,
            "grad_rel": grad_abs / scale}


def check_same(mode: str, split: str, ref: dict, other: dict) -> None:
    d = differences(ref, other)
    print(f"\n{mode} {split}: " + ", ".join(f"{k} {v:.1e}" for k, v in d.items()))
    assert d["loss_rel"] < RTOL and d["grad_rel"] < RTOL, (mode, split, d)
    scale = max(float(g.abs().max()) for g in ref["grads"].values())
    for name, g in ref["grads"].items():  # entry by entry: within rtol, or tiny next to the largest entry
        torch.testing.assert_close(other["grads"][name], g, rtol=RTOL, atol=RTOL * scale)


def test_the_shares_hold_different_numbers_of_answer_tokens():
    """Otherwise a mean of per-share means would equal the pooled mean and the test would prove nothing."""
    labels = PadCollator(0)(samples())["labels"][:, 1:]
    tokens = (labels != -100).sum(1)
    assert len(tokens) == BATCH
    assert len({int(t.sum()) for t in tokens.split(4)}) > 1 and len({int(t.sum()) for t in tokens.split(8)}) > 1


@pytest.mark.parametrize("mode", ["sft", "distill"])
def test_gradient_accumulation_gives_the_whole_batch_step(mode, tmp_path):
    ref = reference(mode, tmp_path)
    accum = one_step(mode, 4, tmp_path / "accum")
    assert (ref["grad_accum"], ref["per_device_batch"]) == (1, BATCH)
    assert (accum["grad_accum"], accum["per_device_batch"]) == (4, BATCH // 4)
    check_same(mode, "4 x 4 accumulation", ref, accum)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sft", "distill"])
def test_two_processes_give_the_whole_batch_step(mode, tmp_path):
    from test_accelerate import accelerate_launch

    ref = reference(mode, tmp_path)
    out = tmp_path / "two.pt"
    accelerate_launch(2, [HARNESS, "--mode", mode, "--out", str(out)], tmp_path / "runs", tmp_path, timeout=300)
    two = torch.load(out, weights_only=False)
    assert (two["world_size"], two["per_device_batch"], two["grad_accum"]) == (2, BATCH // 2, 1)
    check_same(mode, "2 processes x 8", ref, two)


def test_grad_accum_splits_the_global_batch_and_enters_keys_only_when_set(tmp_path, monkeypatch):
    base = get_config("smoke")
    args = training_args(tmp_path, base.replace(batch_size=16, grad_accum=4), 1e-3, 1, 0)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 4)
    for stage in ("tokenizer", "base", "sft", "cache", "distill"):
        parts = {"task": "crade"} if stage == "sft" else {}
        same = stage_key(base, stage, "student", **parts) == stage_key(base.replace(grad_accum=1), stage, "student",
                                                                       **parts)
        changed = stage_key(base, stage, "student", **parts) != stage_key(base.replace(grad_accum=2), stage,
                                                                          "student", **parts)
        assert same and changed == (stage in ("base", "sft", "distill")), stage
    with pytest.raises(ValueError, match="batch_size=6 is not divisible by grad_accum=4"):
        base.replace(batch_size=6, grad_accum=4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="batch_size=4 is not divisible by the world size 2 x grad_accum 4"):
        training_args(tmp_path, base.replace(batch_size=4, grad_accum=4), 1e-3, 1, 0)


def test_results_made_before_grad_accum_existed_can_be_merged(tmp_path):
    """A config.json without grad_accum was made at its default (it enters no key at 1)."""
    import json

    from scd.run.parts import kept_rows

    made = json.loads(json.dumps(get_config("smoke", tasks=("crade",), seeds=(1,)).to_dict(), default=str))
    del made["grad_accum"]
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "config.json").write_text(json.dumps(made))
    (tmp_path / "smoke" / "runs.csv").write_text("model,task,seed,primary\nteacher_sft,crade,1,0.5\n")
    cfg = get_config("smoke", tasks=("crade",), seeds=(0,))
    kept, union = kept_rows(cfg, tmp_path)
    assert union.seeds == (0, 1) and len(kept["runs"]) == 1
    with pytest.raises(SystemExit, match=r"other values of \['grad_accum'\]"):
        kept_rows(cfg.replace(grad_accum=2), tmp_path)
