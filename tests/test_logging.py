"""Logging-only settings: ``report_to="tensorboard"`` writes one event folder per SFT run and per
distillation stage with the Trainer's scalars (and the KD terms), the default writes none, and
neither enters a stage key."""
from pathlib import Path

import pytest

from scd.core.config import get_config
from scd.stages.store import stage_key


def scalars(folder: Path) -> dict[str, list[int]]:
    """Every scalar tag of a TensorBoard event folder and the steps it was written at."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(folder.glob("events.out.tfevents.*")), f"no event file in {folder}"
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_logging_settings_enter_no_stage_key():
    base = get_config("smoke")
    logged = base.replace(report_to="tensorboard,wandb", logging_steps=1)
    for stage, role in (("tokenizer", None), ("base", "student"), ("sft", "teacher"), ("cache", None),
                        ("distill", None)):
        parts = {"task": "crade"} if stage == "sft" else {}
        assert stage_key(base, stage, role, **parts) == stage_key(logged, stage, role, **parts)


@pytest.mark.parametrize("bad", ["tensorbored", "", "none,wandb", "wandb,,mlflow"])
def test_report_to_is_validated(bad):
    with pytest.raises(ValueError, match="config report_to="):
        get_config("smoke", report_to=bad)


def test_report_to_accepts_a_comma_list():
    assert get_config("smoke", report_to="tensorboard, mlflow").report_targets == ["tensorboard", "mlflow"]
    assert get_config("smoke").report_targets == []


def test_tensorboard_gets_every_logging_step(data_dir, runs_dir, tmp_path, monkeypatch):
    """A fresh runs folder: these fields enter no key, so the session's stages would be loaded, not trained."""
    pytest.importorskip("tensorboard")
    import pandas as pd

    from scd.analysis.export import CURVE_COLUMNS, export, load_train_curves, stage_curve
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import distill_stage
    from scd.train.sft import steps_per_epoch

    monkeypatch.setenv("SCD_RUNS_DIR", str(tmp_path / "runs"))
    cfg = get_config("smoke", report_to="tensorboard", logging_steps=1, tasks=("crade",))
    run = distill_stage(cfg, "scd_aw", "crade", 0)
    for role in ("teacher", "student"):
        sft = sft_stage(cfg, role, "crade", 0)
        epochs = cfg.teacher_epochs if role == "teacher" else cfg.student_epochs
        steps = list(range(1, steps_per_epoch(sft.n["train"], cfg) * epochs + 1))
        tags = scalars(Path(sft.path) / "trainer" / "logs")
        assert tags["train/loss"] == steps and tags["train/learning_rate"] == steps, role

    assert len(run.stages) == cfg.n_checkpoints
    for stage in run.stages:
        folder = Path(run.path) / f"stage{stage.stage}"
        tags = scalars(folder / "trainer" / "logs")
        steps = list(range(1, stage.steps + 1))
        for name in ("loss", "kd", "ce", "w_mean", "learning_rate"):
            assert tags[f"train/{name}"] == steps, (stage.stage, name)
        curve = stage_curve(folder)  # what the results export writes to train_curves.csv
        assert [r["step"] for r in curve] == steps
        assert all(r[k] is not None for r in curve for k in ("loss", "kd", "ce", "w_mean", "learning_rate"))

    runs = pd.DataFrame([{"model": "scd_aw", "task": "crade", "seed": 0}])
    export(cfg, runs, {("scd_aw", "crade", 0): run}, tmp_path / "results")
    curves = load_train_curves(cfg, tmp_path / "results")
    assert list(curves.columns) == CURVE_COLUMNS and len(curves) == sum(s.steps for s in run.stages)
    assert load_train_curves(cfg, tmp_path / "elsewhere") is None  # results from before the curves

    default = get_config("smoke", tasks=("crade",))  # a new seed: its student SFT trains here
    sft = sft_stage(default, "student", "crade", 1)
    assert not list(Path(sft.path).rglob("events.out.tfevents.*"))
    assert not (Path(sft.path) / "trainer" / "logs").exists()


def test_results_made_before_the_logging_settings_can_be_merged(tmp_path):
    """Committed results whose config.json predates report_to/logging_steps (or has other values)
    still take a --merge: the settings change no number."""
    import json

    from scd.run.parts import kept_rows

    cfg = get_config("smoke", tasks=("crade",), seeds=(0,), report_to="tensorboard", logging_steps=1)
    made = json.loads(json.dumps(get_config("smoke", tasks=("crade",), seeds=(1,)).to_dict(), default=str))
    del made["report_to"], made["logging_steps"]
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "config.json").write_text(json.dumps(made))
    (tmp_path / "smoke" / "runs.csv").write_text("model,task,seed,primary\nteacher_sft,crade,1,0.5\n")
    kept, union = kept_rows(cfg, tmp_path)
    assert union.seeds == (0, 1) and len(kept["runs"]) == 1
    with pytest.raises(SystemExit, match=r"other values of \['alpha'\]"):
        kept_rows(cfg.replace(alpha=0.25), tmp_path)
