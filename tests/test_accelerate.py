"""Training under ``accelerate launch``: 2 processes (DDP, gloo on CPU) give the same per-step
losses, gradient norms and final weights as 1 process on the same global batches.

The preparatory stages are built here, in-process, before launching; ``tests/launch_harness.py`` then only
loads them. Two launcher details matter on a CPU-only host:
* ``accelerate launch --cpu --num_processes 2`` does *not* start two processes: without
  ``--mpirun_hostfile`` accelerate's CPU launcher runs one plain process (world size 1, the test
  would pass vacuously). ``--multi_gpu`` uses torchrun; with CUDA hidden, the processes form a
  gloo group (``DistributedType.MULTI_CPU``). Every result's world size is checked.
* the accelerate default config file is not read (``HF_HOME`` points into the test folder).
"""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scd.core import numerics

from scd.core.io import read_json
from scd.core.records import BaseRecord, CacheRecord, DistillRecord, SFTRecord

ROOT = Path(__file__).resolve().parents[1]
STEPS, GLOBAL_BATCH, RTOL = 4, 4, 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prepared(smoke_cfg, runs_dir):
    from launch_harness import prepare

    start = time.time()
    prepare(smoke_cfg, "distill", "student", "scd_aw", "crade", 0)
    prepare(smoke_cfg, "sft", "student", "scd_aw", "crade", 0)
    print(f"\npreparatory stages: {time.time() - start:.1f}s")
    return runs_dir


HARNESS = str(Path(__file__).with_name("launch_harness.py"))


def accelerate_launch(n: int, module_args: list[str], runs_dir: Path, scratch: Path, timeout: int,
                      extra_env: dict | None = None) -> None:
    """``accelerate launch`` with ``n`` CPU processes (``--multi_gpu`` with CUDA hidden for n > 1)."""
    shell = {k: v for k, v in os.environ.items() if k not in numerics.SWITCHES}  # workers must pin themselves
    env = dict(shell, SCD_RUNS_DIR=str(runs_dir), SCD_QUIET="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               HF_HOME=str(scratch / "hf_home"), TOKENIZERS_PARALLELISM="false", **(extra_env or {}))
    launcher = ["--cpu"] if n == 1 else ["--multi_gpu"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", str(n),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()), *module_args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n--- output tail ---\n{(proc.stdout + proc.stderr)[-4000:]}"


def launch(n: int, mode: str, out: Path, runs_dir: Path) -> dict:
    start = time.time()
    accelerate_launch(n, [HARNESS, "--profile", "smoke", "--task", "crade", "--mode", mode, "--method", "scd_aw",
                          "--steps", str(STEPS), "--global-batch", str(GLOBAL_BATCH), "--threads", "1",
                          "--out", str(out)], runs_dir, out.parent, timeout=300)
    result = read_json(out)
    print(f"{mode} x{n}: {time.time() - start:.1f}s wall, losses {result['losses']}")
    return result


def rel_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["distill", "sft"])
def test_two_processes_match_one(mode, prepared, tmp_path):
    one = launch(1, mode, tmp_path / "one.json", prepared)
    two = launch(2, mode, tmp_path / "two.json", prepared)

    assert (one["world_size"], one["per_device_batch"]) == (1, GLOBAL_BATCH)
    assert (two["world_size"], two["per_device_batch"]) == (2, GLOBAL_BATCH // 2)
    assert two["distributed_type"] == "DistributedType.MULTI_CPU" and two["backend"] == "gloo"
    assert one["steps"] == two["steps"] == list(range(1, STEPS + 1))
    if mode == "distill":
        assert one["checkpoint"] == two["checkpoint"] and one["candidate_scores"] == two["candidate_scores"]

    # the same global batches: 2 ranks together see exactly the 1-process batch of every step
    batches_one = one["ranks"][0]["seen"]
    batches_two = [sorted(a + b) for a, b in zip(two["ranks"][0]["seen"], two["ranks"][1]["seen"])]
    assert [sorted(b) for b in batches_one] == batches_two
    assert all(len(b) == GLOBAL_BATCH for b in batches_one)

    # the logged loss is the mean of the per-rank (per-sample-mean) losses: with equal per-device
    # batches that is the 1-process batch mean
    rank_means = [sum(pair) / 2 for pair in zip(two["ranks"][0]["local_losses"], two["ranks"][1]["local_losses"])]
    assert rel_diff(rank_means, two["losses"]) < 1e-6

    # training actually moved the weights (learning rate > 0 after warm-up) ...
    assert sum(lr > 0 for lr in one["learning_rates"]) >= STEPS - 1
    # ... with the same per-step losses and gradient norms (grad norms are taken after DDP's
    # all-reduce: they only agree if gradients are averaged across ranks)
    loss_diff, grad_diff = rel_diff(one["losses"], two["losses"]), rel_diff(one["grad_norms"], two["grad_norms"])
    print(f"{mode}: max rel diff losses {loss_diff:.2e}, grad norms {grad_diff:.2e}")
    assert loss_diff < RTOL, (one["losses"], two["losses"])
    assert grad_diff < RTOL, (one["grad_norms"], two["grad_norms"])

    # both ranks end with bit-identical weights, equal to the 1-process weights up to rounding
    w0, w1, w_one = two["ranks"][0]["weights"], two["ranks"][1]["weights"], one["ranks"][0]["weights"]
    assert w0 == w1
    assert abs(w0["sum_sq"] - w_one["sum_sq"]) / w_one["sum_sq"] < 1e-6
    assert abs(w0["sum"] - w_one["sum"]) / abs(w_one["sum"]) < 1e-6

    # every worker computed on the pinned kernels (accelerate's launcher does not import scd)
    pinned = numerics.in_force()
    for rank in one["ranks"] + two["ranks"]:
        assert rank["numerics"]["switches"] == pinned["switches"] and rank["numerics"]["probe"] == pinned["probe"]


@pytest.mark.slow
def test_pipeline_under_two_processes_matches_one(smoke_cfg, runs_dir, tmp_path):
    """``python -m scd distill`` itself under ``accelerate launch`` with 2 processes, from an empty
    runs folder: every stage (tokenizer, base LMs, both SFTs, the cache built half by each rank,
    SCD+AW) runs, with the 1-process run's optimiser steps, losses and cache rows."""
    import torch

    from scd.stages.distill import distill_stage

    one = distill_stage(smoke_cfg, "scd_aw", "crade", 0)
    runs_two = tmp_path / "runs"
    start = time.time()
    accelerate_launch(2, ["-m", "scd", "distill", "--profile", "smoke", "--task", "crade", "--method", "scd_aw",
                          "--seed", "0"], runs_two, tmp_path, timeout=900)
    print(f"\npipeline x2: {time.time() - start:.1f}s wall")

    def done(root: Path, stage: str, record=SFTRecord):
        """The stage the 2-process run made (one of each), in ``root``: the session's runs folder
        may hold other variants of it from other tests."""
        (made,) = (runs_two / "smoke").glob(f"{stage}-*")
        path = root / "smoke" / made.name
        return record.read(path / "done.json"), path

    # same folders (stage keys do not depend on the world size), each stage's record says who ran it
    names = sorted(p.name for p in (runs_two / "smoke").iterdir())
    assert names == sorted(p.name for p in (runs_dir / "smoke").iterdir() if p.name in names)
    two = DistillRecord.read(runs_two / "smoke" / Path(one.path).name / "done.json")
    assert two.world_size == 2 and done(runs_two, "sft-teacher")[0].world_size == 2

    # base LM pretraining: the same windows per step, same loss curve up to reduction order
    for role in ("teacher", "student"):
        a, b = (done(root, f"base-{role}", BaseRecord)[0].details["loss_curve"] for root in (runs_dir, runs_two))
        print(f"base-{role} losses: max rel diff {rel_diff(a, b):.1e}")
        assert len(a) == len(b) and rel_diff(a, b) < 1e-3
    # SFT: the checkpoints fall on the same optimiser steps (the batch is global, not per process)
    for role in ("teacher", "student"):
        steps = [[t.step for t in done(root, f"sft-{role}")[0].trajectory] for root in (runs_dir, runs_two)]
        assert steps[0] == steps[1]
    # the cache, built half by each rank and joined by rank 0, has the 1-process rows in the same order
    cache_one, cache_two = (done(root, "cache", CacheRecord)[1] for root in (runs_dir, runs_two))
    assert not list(cache_two.glob("*.rank*.pt")), "per-rank parts must be removed after joining"
    for file in sorted(cache_one.glob("ckpt*.pt")):
        a, b = torch.load(file, weights_only=True), torch.load(cache_two / file.name, weights_only=True)
        assert a["sample_ids"] == b["sample_ids"] and torch.equal(a["offsets"], b["offsets"])
        top1 = (a["topk_ids"][:, 0] == b["topk_ids"][:, 0]).float().mean().item()
        print(f"cache {file.name}: top-1 agreement {top1:.3f}, max |d logp| "
              f"{(a['topk_logp'] - b['topk_logp']).abs().max().item():.1e}")
        assert top1 > 0.95
    # distillation: as many stages with as many steps, test on the same items
    assert [s.steps for s in one.stages] == [s.steps for s in two.stages]
    assert two.test.n == one.test.n
    print("test primary: 1 process", one.test.primary, "| 2 processes", two.test.primary)


def test_a_batch_the_ranks_cannot_share_equally_is_refused(smoke_cfg, tmp_path, monkeypatch):
    from scd.train.training import training_args

    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="batch_size=4 is not divisible by the world size 3"):
        training_args(tmp_path, smoke_cfg, 1e-3, 1, 0)


@pytest.mark.slow
def test_evaluation_shared_by_two_processes_gives_the_same_rows(smoke_cfg, runs_dir, tmp_path):
    """Generation and gold loss split by batches over 2 ranks, gathered in item order: the
    per-sample rows (text, prediction, credit, gold loss) are those of one process, exactly.
    The 2-process run has FSDP's RAM-efficient loading switched on (what accelerate sets from
    ``fsdp_cpu_ram_efficient_loading: true``), so the training-load path runs too; whether it left
    meta tensors on rank 1 is recorded in the output (transformers 5.24: it does not, see
    configs/accelerate/README.md)."""
    from scd.stages.base_sft import sft_stage

    sft_stage(smoke_cfg, "teacher", "crade", 0)  # built here once; the launches only load it
    out = {}
    for n in (1, 2):
        env = {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"} if n == 2 else {}
        accelerate_launch(n, [HARNESS, "--profile", "smoke", "--task", "crade", "--mode", "evaluate",
                              "--eval-batch", "4", "--threads", "1", "--out", str(tmp_path / f"{n}.json")],
                          runs_dir, tmp_path, timeout=300, extra_env=env)
        out[n] = read_json(tmp_path / f"{n}.json")
    assert out[2]["world_size"] == 2 and [n for _, n in out[2]["items_per_rank"]] == [8, 4]  # 3 batches of 4
    assert out[1]["rows"] == out[2]["rows"] and len(out[1]["rows"]) == smoke_cfg.max_eval
    assert out[1]["summary"] == out[2]["summary"]
