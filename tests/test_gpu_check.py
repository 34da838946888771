"""The GPU check (benchmarks/gpu_check.sh): its `gpu` profile is what the docs say, its carried
folder fits a lent machine, and its CPU dry run writes every file the GPU run would."""
import json
import os
import re
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from scd.core.config import get_config
from scd.data.files import SHA256
from scd.train.models import scratch_params

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks"))
LIMIT = 64 * 2**20  # what a lent machine takes, working tree and carried folders together
OUT_FILES = {"gpu_run.json", "deployment.csv", "deployment_ratios.csv", "results.tar.gz", "nvidia_smi.txt",
             "gpu_check.log"}


def gpu_check(mode: str, tmp: Path, *args: str, timeout: int = 600, **env) -> subprocess.CompletedProcess:
    run_env = os.environ | {"PYTHON": sys.executable, "CARRY": str(tmp / "carry"), "OUT": str(tmp / "out")} | env
    return subprocess.run(["bash", str(SCRIPT), mode, *args], env=run_env, capture_output=True, text=True,
                          timeout=timeout)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_gpu_profile_sizes_and_settings(tmp_path):
    """A 91.1 M teacher and a 22.9 M student (a quarter), counted from the specs without weights;
    the `cpu` profile's tokenizer and data path; bf16, which reaches the Trainer's arguments."""
    from scd.train.training import training_args

    gpu, cpu = get_config("gpu"), get_config("cpu")
    teacher, student = scratch_params(gpu.teacher, gpu), scratch_params(gpu.student, gpu)
    assert (teacher, student) == (91_097_856, 22_927_872)
    assert 0.24 < student / teacher < 0.26
    assert (scratch_params(cpu.teacher, cpu), scratch_params(cpu.student, cpu)) == (5_163_264, 559_296)  # as trained
    assert gpu.key_fields("tokenizer") == cpu.key_fields("tokenizer")
    same = ("max_train", "train_sampling", "max_eval", "max_length", "max_new_tokens", "prompt_cut", "prompt_room",
            "stop_at_bracket", "stop_at_repeat", "batch_size", "n_checkpoints", "stage_epochs", "probe_size",
            "probe_sampling", "top_k", "pretrain_window", "min_train_items")
    assert {k: getattr(gpu, k) for k in same} == {k: getattr(cpu, k) for k in same}
    assert gpu.models == ("teacher_sft", "student_sft", "td", "scd_aw") and gpu.bf16 and not cpu.bf16
    assert training_args(tmp_path, gpu, gpu.teacher_lr, 1, 0).bf16


def test_data_files_are_what_the_chain_reads():
    """The `gpu` corpus leaves out every task's evaluation passages, so it reads every file; the
    smoke corpus reads its three tasks' files only."""
    from gpu_run import data_files

    assert data_files("gpu", "crade") == sorted(SHA256)
    assert data_files("smoke", "crade") == sorted(
        f for f in SHA256 if any(k in f.lower() for k in ("crade", "nrner", "pubmedqa")))


def test_stale_wheels_are_those_of_other_versions(tmp_path):
    from gpu_run import stale_wheels

    names = [f"numpy-{metadata.version('numpy')}-cp312-cp312-manylinux_2_28_x86_64.whl",
             "transformers-0.0.1-py3-none-any.whl", "no_such_package-1.0-py3-none-any.whl"]
    for name in names:
        (tmp_path / name).touch()
    assert sorted(w.name for w in stale_wheels(tmp_path)) == sorted(names[1:])
    (tmp_path / "transformers-0.0.2-py3-none-any.whl").touch()
    with pytest.raises(SystemExit, match="transformers"):
        stale_wheels(tmp_path)


def test_carried_folder_fits_a_lent_machine(data_dir, tmp_path):
    """The real `gpu` carry: every benchmark file and this venv's wheels for the GPU machine's
    Python. The wheels come from PyPI (or pip's cache); offline, the data part is checked alone."""
    done = gpu_check("prepare", tmp_path, timeout=300, SCD_DATA_DIR=str(data_dir))
    carry = tmp_path / "carry"
    if done.returncode and "pip download failed" in done.stderr:
        data = gpu_check("prepare", tmp_path, timeout=120, SCD_DATA_DIR=str(data_dir), WHEELS="0")
        assert data.returncode == 0, data.stderr
        assert folder_size(carry) <= LIMIT
        pytest.skip(f"PyPI unreachable, wheels not measured: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    printed = int(re.search(r"carry: (\d+) bytes", done.stdout).group(1))  # du's count, directories included
    assert folder_size(carry) <= printed <= LIMIT
    assert sorted(str(p.relative_to(carry / "data")) for p in (carry / "data").rglob("*") if p.is_file()) == \
        sorted(SHA256)
    wheels = sorted(p.name for p in (carry / "wheels").glob("*.whl"))
    assert f"transformers-{metadata.version('transformers')}-py3-none-any.whl" in wheels
    assert any(w.startswith(f"huggingface_hub-{metadata.version('huggingface_hub')}-") for w in wheels)
    assert len(wheels) == len({w.split("-")[0] for w in wheels}) == 11  # one version of each


def test_cpu_dry_run_writes_what_the_gpu_run_would(data_dir, runs_dir, tmp_path):
    """`prepare` then `run` on the smoke profile, no GPU: the six files a GPU run returns, with
    every stage's wall time (peak GPU memory null), the four models' test scores and "no GPU"."""
    prepared = gpu_check("prepare", tmp_path, timeout=120, PROFILE="smoke", WHEELS="0", SCD_DATA_DIR=str(data_dir))
    assert prepared.returncode == 0, prepared.stderr
    done = gpu_check("run", tmp_path, "--set", "methods=td,scd_aw", "--deploy-items", "8", "--decode", "4,12",
                     "--prefill", "8,16", PROFILE="smoke", SCD_RUNS_DIR=str(runs_dir), CUDA_VISIBLE_DEVICES="")
    out = tmp_path / "out"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == OUT_FILES  # a lent machine returns at most 8 files
    record = json.loads((out / "gpu_run.json").read_text())
    assert [s["stage"] for s in record["stages"]] == [
        "tokenizer", "base LM teacher", "base LM student", "teacher SFT", "student SFT", "target cache",
        "distill td", "distill scd_aw", "collect and export", "deployment"]
    assert all(s["wall_s"] >= 0 and s["peak_gpu_gib"] is None for s in record["stages"])
    assert record["total_s"] >= sum(s["wall_s"] for s in record["stages"]) - 1
    assert set(record["scores"]) == {"teacher_sft", "student_sft", "td", "scd_aw"} and record["failed"] == {}
    assert all(0 <= s["primary"] <= 1 for s in record["scores"].values())
    assert record["device"]["gpu"] == record["device"]["nvidia_smi"] == "no GPU"
    assert record["versions"]["transformers"]["version"] == metadata.version("transformers")
    assert record["params"]["teacher"] > record["params"]["student"] > 0
    assert (out / "nvidia_smi.txt").read_text().strip() == "no GPU"
    log = (out / "gpu_check.log").read_text()
    assert "no carried wheels" in log and "[gpu_run] done in" in log and "s in all" in log
    deploy = pd.read_csv(out / "deployment.csv")
    assert set(deploy.model) == {"teacher", "student"} and (deploy.value > 0).all()
    with tarfile.open(out / "results.tar.gz") as tar:
        runs = pd.read_csv(tar.extractfile("results_smoke/runs.csv"))
    assert list(runs.model) == ["teacher_sft", "student_sft", "td", "scd_aw"]
    assert dict(zip(runs.model, runs.primary)) == {m: s["primary"] for m, s in record["scores"].items()}


def test_run_without_prepare_says_what_to_do(tmp_path):
    done = gpu_check("run", tmp_path, timeout=60)
    assert done.returncode == 1 and "prepare" in done.stderr and len(done.stderr.strip().splitlines()) == 1
