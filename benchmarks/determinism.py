"""Is a CPU stage bitwise repeatable, and what breaks it? Two fresh runs of the first steps of a
base-LM pretraining (the first stage where results can drift between machines), per thread count.

Each run builds the profile's tokenizer (once, shared) and base LM in a fresh runs folder and
trains it with the profile's full schedule, stopped after ``--steps`` optimiser steps, so its
first logged loss is the one the committed ``base_models.json`` records. Prints the losses and a
SHA-256 of the weights, and adds this machine's entry (its fingerprint, kernel switches and runs)
to the record, which keeps every CPU kind measured so far and says whether their pinned runs agree.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import scd  # noqa: F401  (pins the CPU kernels before torch loads; SCD_NATIVE_KERNELS=1 measures without)
import torch
from transformers import TrainerCallback

from scd.core import environment, numerics
from scd.core.config import get_config
from scd.core.io import project_path, read_json, write_json


def fingerprint(model) -> dict:
    """SHA-256 of the weights' names and float32 bytes (first 16 hex digits), as the launch harness computes it."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return {"sha256": digest.hexdigest()[:16]}


class StopAt(TrainerCallback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kw):
        control.should_training_stop = state.global_step >= self.steps
        return control


def one_run(cfg, role: str, steps: int, threads: int, tok_runs: Path) -> dict:
    from scd.data.corpus import corpus_texts
    from scd.train.models import build_scratch_model, load_tokenizer
    from scd.stages.base_sft import tokenizer_stage
    from scd.train.pretrain import pretrain, token_stream

    torch.set_num_threads(threads)
    os.environ["SCD_RUNS_DIR"] = str(tok_runs)
    tok = load_tokenizer(tokenizer_stage(cfg)[0])
    spec = getattr(cfg, role)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_scratch_model(spec, tok, cfg, cfg.base_seed)
        stream = token_stream(corpus_texts(cfg.corpus_tasks, None, cfg.corpus_excludes_eval, cfg.dev_sampling), tok)
        start, cpu = time.time(), time.process_time()
        info = pretrain(model, stream, spec.pretrain_steps, spec.pretrain_batch, spec.pretrain_lr, cfg,
                        Path(tmp) / "trainer", cfg.base_seed, save_to=Path(tmp) / "model", callbacks=[StopAt(steps)])
    return {"threads": threads, "steps": steps, "loss_curve": info["loss_curve"],
            "weights_sha256": fingerprint(model)["sha256"], "wall_s": time.time() - start,
            "cpu_s": time.process_time() - cpu,  # CPU time of all threads: comparable when the cores are shared
            "kernel_switches": {k: os.environ.get(k) for k in numerics.SWITCHES}}


def merged(old: dict | None, record: dict) -> dict:
    """The record with this machine's entry added or replaced (one entry per CPU kind and pin),
    and whether every pinned entry ends with the same weights."""
    env = record.pop("environment")
    key = f"{env['cpu']} ({'native kernels' if env['numerics']['native'] else 'pinned kernels'})"
    machines = dict((old or {}).get("machines", {})) if (old or {}).get("profile") == record["profile"] else {}
    machines[key] = {"environment": env, "runs": record.pop("runs")}
    pinned = {run["weights_sha256"] for m in machines.values() if not m["environment"]["numerics"]["native"]
              for run in m["runs"]}
    kinds = {m["environment"]["cpu"] for m in machines.values() if not m["environment"]["numerics"]["native"]}
    return record | {"machines": dict(sorted(machines.items())), "pinned_cpu_kinds": sorted(kinds),
                     "pinned_weights_agree": len(pinned) == 1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--role", default="teacher")
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per run (cpu teacher: 30 = first log)")
    p.add_argument("--threads", default="2,2,1", help="thread count of each run, in order")
    p.add_argument("--out", default=str(project_path("results") / "determinism"))
    args = p.parse_args(argv)
    os.environ.setdefault("SCD_QUIET", "1")
    cfg = get_config(args.profile)
    committed = project_path("results") / args.profile / "base_models.json"
    reference = read_json(committed)[args.role]["details"]["loss_curve"] if committed.is_file() else None
    runs = []
    with tempfile.TemporaryDirectory() as tok_runs:
        for threads in map(int, args.threads.split(",")):
            run = one_run(cfg, args.role, args.steps, threads, Path(tok_runs))
            runs.append(run)
            print(f"threads={threads}: losses {run['loss_curve']} weights {run['weights_sha256']} "
                  f"({run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s CPU)", flush=True)
    record = {"profile": args.profile, "role": args.role, "environment": environment.fingerprint(),
              "committed_first_loss": reference[0] if reference else None, "runs": runs}
    path = Path(args.out) / f"{args.profile}_{args.role}_base.json"
    record = merged(read_json(path) if path.is_file() else None, record)
    write_json(path, record)
    print(f"wrote {path}: pinned runs on {len(record['pinned_cpu_kinds'])} CPU kind(s), weights "
          f"{'agree' if record['pinned_weights_agree'] else 'differ'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
