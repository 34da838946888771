"""The stage store: keys come from the config's field metadata and cover the data a stage reads;
compute-or-load builds once; records round-trip and refuse files of another shape; the package
stays layered (shallow imports, small modules, a config that needs no torch)."""
import ast
import dataclasses
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from scd.core.config import STAGES, Config, ModelSpec, get_config
from scd.core.records import BaseRecord, Checkpoint, RecordError, Scores, SFTRecord
from scd.stages.store import compute_or_load, stage_dir, stage_key
from scd.core.tasks import get_task

SCD = Path(__file__).resolve().parents[1] / "scd"


def other_value(f: dataclasses.Field, value):
    """A different valid value of a config field."""
    if isinstance(value, ModelSpec):
        return dataclasses.replace(value, layers=value.layers + 1)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        step = 1 if isinstance(value, int) else 0.05
        hi = f.metadata.get("hi")
        return value + step if hi is None or value + step <= hi else value - step
    return {"model_source": "hub", "divergence": "jsd", "selection_terms": "best", "corpus_tasks": ("crade",),
            "max_train": 5, "max_eval": 5, "train_sampling": "uniform", "dev_sampling": "uniform", "probe_sampling": "stratified",
            "prompt_cut": "passage", "prompt_room": "by_kind"}.get(f.name, "other-model")


@pytest.mark.parametrize("f", [f for f in dataclasses.fields(Config) if f.metadata["key"]], ids=lambda f: f.name)
def test_a_field_changes_exactly_the_keys_it_declares(f):
    base = get_config("smoke")
    changed = dataclasses.replace(base, **{f.name: other_value(f, getattr(base, f.name))})
    for stage in STAGES:
        for role in ("teacher", "student"):
            for task in ("crade", "nrner"):  # a choice task and a NER task
                parts = {"task": task} if stage == "sft" else {}
                differs = stage_key(base, stage, role, **parts) != stage_key(changed, stage, role, **parts)
                kinds = f.metadata["kinds"]
                wanted = (stage in f.metadata["key"] and f.metadata["role"] in (None, role)
                          and (kinds is None or get_task(task).kind in kinds))
                assert differs == wanted, (f.name, stage, role, task)


def test_a_ner_setting_leaves_the_other_tasks_stages_alone():
    """stop_at_repeat keys NER SFT stages only: switching it on recomputes no choice task."""
    base = get_config("cpu")
    on = base.replace(stop_at_repeat=not base.stop_at_repeat)
    assert stage_key(base, "sft", "teacher", task="crade") == stage_key(on, "sft", "teacher", task="crade")
    assert stage_key(base, "sft", "teacher", task="nrner") != stage_key(on, "sft", "teacher", task="nrner")


def test_every_field_declares_its_stages():
    for f in dataclasses.fields(Config):
        assert set(f.metadata["key"]) <= set(STAGES), f.name
        if not f.metadata["key"]:  # entering no key needs a reason in the help text
            assert len(f.metadata["help"]) > 20, f.name


def test_sft_and_distill_keys_cover_the_data_they_read(smoke_cfg):
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import distill_stage

    teacher = sft_stage(smoke_cfg, "teacher", "crade", 0)
    task = get_task("crade")
    assert set(teacher.key["data"]) == {task.test_file, *task.pool_files}
    assert teacher.key["base"]["tokenizer"]["data"]  # the corpus the base LM read
    run = distill_stage(smoke_cfg, "scd_aw", "crade", 0)
    assert run.key["cache"]["teacher"] == teacher.key and run.key["student"]["data"] == teacher.key["data"]
    name = Path(run.path).name
    assert name.startswith("distill-scd_aw-crade-s0-") and Path(teacher.path).name.startswith("sft-teacher-crade-s0-")


def test_compute_or_load_builds_once_and_checks_what_it_built(tmp_path):
    cfg = get_config("smoke")
    key = stage_key(cfg, "base", "student", note="test")
    path = stage_dir(cfg, key, "base", "student")
    assert path.name.startswith("base-student-")
    calls = []

    def build(p):
        calls.append(p)
        return BaseRecord(key=key, params=7, tokenizer_hash="hash")

    first = compute_or_load(tmp_path / "stage", BaseRecord, build)
    again = compute_or_load(tmp_path / "stage", BaseRecord, build)
    assert first == again == BaseRecord(key=key, params=7, tokenizer_hash="hash") and len(calls) == 1
    with pytest.raises(TypeError, match="expected SFTRecord"):
        compute_or_load(tmp_path / "other", SFTRecord, build)
    assert not (tmp_path / "other" / "done.json").exists()  # nothing marked done


def test_records_round_trip_and_name_the_file_they_cannot_read(tmp_path):
    dev = Scores(n=4, n_unparsed=1, primary=0.5, selection=0.25, gold_loss=1.5, accuracy=0.5, kappa=0.25)
    ckpt = Checkpoint(checkpoint="ckpt0", index=0, step=3, path="/x", epoch=1.0, dev=dev)
    assert Checkpoint.from_json(ckpt.to_json()) == ckpt and dev.named() == {"accuracy": 0.5, "kappa": 0.25}
    bad = tmp_path / "done.json"
    bad.write_text('{"key": {}, "params": 1}')
    with pytest.raises(RecordError, match=r"done.json: not a BaseRecord: missing \['tokenizer_hash'\]"):
        BaseRecord.read(bad)


def test_config_imports_without_torch_or_the_data():
    code = "import sys, scd.core.config; sys.exit(bool({'torch', 'sklearn', 'pandas'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_modules_stay_readable():
    """Files are sized by concept, not split to meet a number; none grows past one sitting's read."""
    sizes = {str(p.relative_to(SCD)): len(p.read_text().splitlines()) for p in SCD.rglob("*.py")}
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
