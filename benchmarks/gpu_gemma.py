"""The ``gemma`` profile on one task, end to end, inside a time budget (the runs recorded in
``results/gemma_cpu/``; the GPU check is ``benchmarks/gpu_check.sh``, on the ``gpu`` profile,
since the Gemma GGUF is too large to carry to a lent GPU machine).

Converts Gemma 3 270M from the PyPI GGUF, prunes and heals the student, runs teacher and
student SFT, then as many distillation methods as the budget allows (SCD+AW first), and
writes every stage's wall time, peak GPU memory and scores to ``--out`` after each stage, so
a run stopped at its limit still reports what it finished. Runs on CPU too (slowly): ``--set``
shrinks the profile.

    python benchmarks/gpu_gemma.py --task nrner --out results/gemma --budget-s 420
    # the teacher comparison on a CPU, capped (docs/results.md)
    python benchmarks/gpu_gemma.py --task nrner --teacher-only --out results/gemma_cpu \
        --set max_train=200 --set teacher_epochs=2 --set n_checkpoints=2 --set teacher_lr=5e-5
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import scd  # noqa: E402,F401  (first: pins the CPU kernels before torch loads)
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from scd.cli import parse_overrides  # noqa: E402
from scd.core.config import get_config  # noqa: E402
from scd.core.io import project_path, write_json  # noqa: E402
from scd.stages.base_sft import base_model_stage, sft_stage  # noqa: E402
from scd.stages.distill import distill_stage  # noqa: E402

METHODS = ("scd_aw", "td", "scd", "cd", "td_aw", "cd_aw")  # scd_aw first: the budget may stop the rest


def cpu_teacher_dev(task: str, seed: int) -> float | None:
    """The ``cpu`` profile's teacher dev score on the task (committed results), for comparison."""
    path = project_path("results") / "cpu" / "trajectory.csv"
    if not path.is_file():
        return None
    t = pd.read_csv(path)
    rows = t[(t.model == "teacher_sft") & (t.task == task) & (t.seed == seed) & t.best]
    return float(rows.dev_primary.iloc[0]) if len(rows) else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="nrner")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/gemma")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no distillation method after this")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a gemma profile field")
    p.add_argument("--teacher-only", action="store_true",
                   help="conversion and teacher SFT only: the teacher-vs-cpu-teacher comparison (feasible on CPU)")
    args = p.parse_args(argv)
    cfg = get_config("gemma", tasks=(args.task,), seeds=(args.seed,), **parse_overrides(args.set))
    out = Path(args.out) / f"gemma_{args.task}.json"
    cuda = torch.cuda.is_available()
    record = {"task": args.task, "seed": args.seed, "budget_s": args.budget_s, "overrides": args.set or [],
              "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__, "stages": [], "skipped": [],
              "cpu_profile_teacher_dev": cpu_teacher_dev(args.task, args.seed)}
    start = time.time()

    def timed(name: str, fn):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        result = fn()
        row = {"stage": name, "wall_s": round(time.time() - t0, 1)}
        if cuda:
            row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        record["stages"].append(row)
        record["total_s"] = round(time.time() - start, 1)
        write_json(out, record)
        print(row, flush=True)
        return result

    roles = ("teacher",) if args.teacher_only else ("teacher", "student")
    for role in roles:
        _, base = timed(f"base {role}", lambda: base_model_stage(cfg, role))
        record[f"base_{role}"] = {"params": base.params, "wall_s": base.wall_s} | {
            k: v for k, v in base.details.items() if k in ("kept_layers", "window_loss", "final_loss")}
    for role in roles:
        info = timed(f"{role} SFT", lambda: sft_stage(cfg, role, args.task, args.seed))
        best = next(t for t in info.trajectory if t.checkpoint == info.best)
        record[f"{role}_sft"] = {"dev_primary": best.dev.primary, "test_primary": info.test.primary,
                                 "dev_trajectory": [t.dev.primary for t in info.trajectory],
                                 "train_s": info.train_s, "n": info.n}
    for method in [] if args.teacher_only else args.methods.split(","):
        if time.time() - start > args.budget_s:
            record["skipped"].append(method)
            continue
        info = timed(f"distill {method}", lambda: distill_stage(cfg, method, args.task, args.seed))
        record[method] = {"test_primary": info.test.primary, "best": info.best, "train_s": info.train_s,
                          "select_s": info.select_s, "checkpoints": [s.checkpoint for s in info.stages]}
    record["total_s"] = round(time.time() - start, 1)
    write_json(out, record)
    print(f"{out}: teacher dev {record['teacher_sft']['dev_primary']:.3f} (cpu profile's teacher: "
          f"{record['cpu_profile_teacher_dev']}), total {record['total_s']:.0f}s, skipped {record['skipped']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
