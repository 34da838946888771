"""Faults a long reproduction meets: a real SIGKILL mid-stage, non-finite losses, corrupted rows."""
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scd.core.config import get_config
from scd.core.tasks import TASKS
from scd.data.benchmark import csv_record
from scd.core.io import DataError
from scd.stages.base_sft import base_model_stage
from scd.core.records import DistillRecord, SFTRecord
from scd.stages.store import stage_dir, stage_key

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, runs, timeout=600):
    env = os.environ | {"SCD_RUNS_DIR": str(runs), "SCD_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-m", "scd", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(proc, condition, timeout=300):
    start = time.time()
    while time.time() - start < timeout:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError("kill point never reached")


def finish(proc):
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-3000:]


@pytest.fixture(scope="module")
def shared_base(smoke_cfg, tmp_path_factory):
    """Two runs folders sharing copies of the same tokenizer and base LMs."""
    import shutil

    base_model_stage(smoke_cfg, "teacher")
    base_model_stage(smoke_cfg, "student")
    src = Path(os.environ["SCD_RUNS_DIR"]) / "smoke"
    roots = []
    for name in ("killed", "clean"):
        root = tmp_path_factory.mktemp(name)
        for stage in src.iterdir():
            if stage.name.startswith(("tokenizer-", "base-")):
                shutil.copytree(stage, root / "smoke" / stage.name)
        roots.append(root)
    return roots


SFT_ARGS = ["sft", "--profile", "smoke", "--task", "crade", "--role", "teacher", "--seed", "3",
            "--set", "teacher_epochs=8", "--set", "n_checkpoints=4"]


def test_sigkilled_teacher_sft_resumes_to_the_same_metrics(shared_base):
    killed, clean = shared_base
    proc = run_cli(SFT_ARGS, killed)
    kill_when(proc, lambda: any((p / "trainer_state.json").is_file()
                                for p in killed.glob("smoke/sft-teacher-*/trainer/checkpoint-*")))
    assert not list(killed.glob("smoke/sft-teacher-*/done.json"))
    finish(run_cli(SFT_ARGS, killed))
    finish(run_cli(SFT_ARGS, clean))
    a, b = (SFTRecord.read(next(root.glob("smoke/sft-teacher-*/done.json"))) for root in (killed, clean))
    assert a.test == b.test
    assert [t.dev for t in a.trajectory] == [t.dev for t in b.trajectory]


DISTILL_ARGS = ["distill", "--profile", "smoke", "--task", "crade", "--method", "scd_aw", "--seed", "3",
                "--set", "stage_epochs=3", "--set", "n_checkpoints=3"]


def test_sigkilled_distillation_resumes_without_redoing_stages(shared_base):
    killed, clean = shared_base
    proc = run_cli(DISTILL_ARGS, killed)
    stage0 = lambda: list(killed.glob("smoke/distill-scd_aw-*/stage0/done.json"))  # noqa: E731
    kill_when(proc, lambda: bool(stage0()) and any(killed.glob("smoke/distill-scd_aw-*/stage1/trainer/checkpoint-*/trainer_state.json")))
    first_stage = stage0()[0]
    written = first_stage.stat().st_mtime_ns
    finish(run_cli(DISTILL_ARGS, killed))
    assert first_stage.stat().st_mtime_ns == written  # the finished stage was loaded, not redone
    finish(run_cli(DISTILL_ARGS, clean))
    a, b = (DistillRecord.read(next(root.glob("smoke/distill-scd_aw-*/done.json"))) for root in (killed, clean))
    assert a.test == b.test and a.best == b.best
    assert [s.checkpoint for s in a.stages] == [s.checkpoint for s in b.stages]
    assert [s.dev for s in a.stages] == [s.dev for s in b.stages]


def test_nonfinite_loss_names_step_and_samples(smoke_cfg):
    from scd.train.models import load_model, load_tokenizer
    from scd.data.encoding import PadCollator, encode
    from scd.train.sft import AnswerOnlyTrainer
    from scd.train.training import NonFiniteLoss, training_args
    from scd.stages.base_sft import task_splits

    path, _ = base_model_stage(smoke_cfg, "student")
    model, tok = load_model(path), load_tokenizer(path)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    recs = task_splits(smoke_cfg, "crade")["train"][:2]
    batch = PadCollator(tok.pad_token_id)(encode(recs, tok, smoke_cfg)[0])
    trainer = AnswerOnlyTrainer(model=model, args=training_args(Path(os.environ["SCD_RUNS_DIR"]) / "nan", smoke_cfg,
                                                                1e-3, 1, 0))
    with pytest.raises(NonFiniteLoss, match=r"at step 0 on samples \['crade/CRADE.csv:\d+'"):
        trainer.compute_loss(model, batch)


def test_bad_configuration_fails_before_training(smoke_cfg):
    from scd.stages.distill import distill_stage

    with pytest.raises(ValueError, match="unknown method"):
        distill_stage(smoke_cfg, "kd", "crade", 0)
    with pytest.raises(ValueError, match="stage_epochs=0 out of range"):
        get_config("smoke", stage_epochs=0)
    with pytest.raises(ValueError, match="unknown task"):
        from scd.core.tasks import get_task

        get_task("mednli")


def test_stage_folders_never_collide():
    a, b = get_config("smoke"), get_config("smoke", teacher_lr=5e-4)
    ka, kb = (stage_key(c, "sft", "teacher", task="crade", seed=0) for c in (a, b))
    assert stage_dir(a, ka, "sft", "teacher") != stage_dir(b, kb, "sft", "teacher")
    assert stage_key(a, "sft", "student", task="crade", seed=0) == stage_key(b, "sft", "student", task="crade", seed=0)


ROW_KEYS = ["tag", "question", "optionA", "optionB", "optionC", "optionD", "optionE", "answer"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=st.sampled_from([t for t in TASKS.values() if t.kind != "yesno"]),
       row=st.dictionaries(st.sampled_from(ROW_KEYS), st.one_of(st.text(max_size=30), st.sampled_from(
           ["A", "B", "F", "", "['a', 'b']", "[1, 2]", "{'x'}", "['unterminated", "None"])), max_size=8))
def test_fuzzed_rows_load_or_fail_clearly(task, row):
    try:
        rec = csv_record(task, row, "fuzz.csv row 7")
    except DataError as exc:
        assert str(exc).startswith("fuzz.csv row 7: ")
        return
    assert rec["prompt"] and rec["answer"] and rec["question"].strip() if "question" in rec else rec["prompt"]
    if task.kind == "choice":
        assert rec["answer"] in "ABCDE"


def test_sigkilled_notebook_reproduction_resumes(smoke_cfg, data_dir, tmp_path):
    """Kill `python -m scd reproduce` mid-pipeline; rerunning finishes with the numbers of an
    uninterrupted run (the session's own smoke stages, computed in another folder)."""
    import pandas as pd

    from scd.run.render import notebook_paths
    from scd.run.reproduce import run_all

    runs, res = tmp_path / "runs", tmp_path / "out" / "results"
    args = ["reproduce", "--profile", "smoke", "--out", str(tmp_path / "out")]
    proc = run_cli(args, runs)
    kill_when(proc, lambda: any(runs.glob("smoke/distill-*/done.json")), timeout=900)
    assert not (res / "smoke" / "runs.csv").exists()
    finish(run_cli(args, runs))
    assert sorted(p.name for p in (tmp_path / "out" / "notebooks").glob("*.ipynb")) == [p.name for p in notebook_paths(REPO / "notebooks")]
    reference = run_all(smoke_cfg, tmp_path / "reference", log=lambda *_: None)
    got = pd.read_csv(res / "smoke" / "runs.csv").set_index(["model", "task", "seed"]).sort_index()
    want = pd.read_csv(reference / "runs.csv").set_index(["model", "task", "seed"]).sort_index()
    pd.testing.assert_series_equal(got["primary"], want["primary"])
    pd.testing.assert_series_equal(got["gold_loss"], want["gold_loss"], rtol=1e-6)


def test_missing_teacher_checkpoint_is_named(smoke_cfg):
    import shutil

    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import cache_stage

    cfg = smoke_cfg.replace(teacher_lr=7e-4)  # its own teacher run, so other tests keep theirs
    teacher = sft_stage(cfg, "teacher", "crade", 0)
    shutil.rmtree(teacher.trajectory[0].path)
    with pytest.raises(FileNotFoundError, match="teacher checkpoints .*checkpoint-.* are missing"):
        cache_stage(cfg, teacher, "crade")


def test_teacher_and_student_with_different_tokenizers_are_refused(smoke_cfg, monkeypatch):
    import scd.stages.distill as rd

    real = rd.sft_stage

    def student_with_other_vocab(cfg, role, *args):
        info = real(cfg, role, *args)
        return dataclasses.replace(info, tokenizer_hash="another-vocabulary") if role == "student" else info

    monkeypatch.setattr(rd, "sft_stage", student_with_other_vocab)
    with pytest.raises(ValueError, match="different tokenizers"):
        rd.distill_stage(smoke_cfg, "td", "crade", 0)


def test_duplicated_ids_are_refused():
    from scd.data.splits import check_disjoint

    rec = {"id": "crade/CRADE.csv:5", "question": "q1"}
    with pytest.raises(DataError, match="id 'crade/CRADE.csv:5' appears in train and dev"):
        check_disjoint({"train": [rec], "dev": [rec | {"question": "q2"}], "test": []})
