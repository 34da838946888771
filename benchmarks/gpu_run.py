"""The GPU check's driver: one task's whole chain of a profile and the deployment benchmark,
timed stage by stage on whatever device torch finds (``benchmarks/gpu_check.sh`` prepares and
starts it; docs/reproducing.md says how).

It calls the package's own stages (tokenizer, base LMs, teacher and student SFT, target cache,
distillation, ``collect`` and ``export``), so what it times is what ``make reproduce`` computes,
and it rewrites its record after every stage, so a run stopped at a lease's limit still reports
what finished. A lent GPU machine returns few files, so ``--out`` gets exactly four:
``gpu_run.json`` (stage wall times and peak GPU memory, test scores, the device and library
versions), ``deployment.csv``, ``deployment_ratios.csv`` and ``results.tar.gz`` (the exported
results folder); the shell script adds ``nvidia_smi.txt`` and its log.

    python benchmarks/gpu_run.py run --profile gpu --task crade --out results/gpu
    python benchmarks/gpu_run.py data-files --profile gpu --task crade   # the data `prepare` carries
    python benchmarks/gpu_run.py stale-wheels gpu_carry/wheels          # the wheels `run` installs

The two helper commands import nothing heavy: they run before the carried packages are installed.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package from this checkout, also where it is not installed
sys.path.insert(1, str(ROOT / "benchmarks"))  # deployment.py beside this script

VERSIONS = ("torch", "transformers", "tokenizers", "accelerate", "huggingface_hub", "safetensors", "numpy", "pandas",
            "regex", "httpx2")


# ------------------------------------------------------------------ before the carried packages
def data_files(profile: str, task: str) -> list[str]:
    """The benchmark files a task's chain reads, relative to the data folder: the task's own, those
    of the corpus tasks (tokenizer and base LMs) and, when the corpus leaves out evaluation
    passages, every task's (they are read to find those passages)."""
    from scd.core.config import get_config
    from scd.core.tasks import TASKS, get_task

    cfg = get_config(profile, tasks=(task,))
    if get_task(task).card is not None:
        raise SystemExit(f"task {task!r} is a task card: the GPU check runs the built-in benchmark tasks")
    names = set(TASKS) if cfg.corpus_excludes_eval else {task, *(cfg.corpus_tasks or TASKS)}
    return sorted({f for name in names for f in (get_task(name).test_file, *get_task(name).pool_files)})


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    """Distribution name (normalised) and version from a wheel's file name."""
    parts = wheel.name.split("-")
    if len(parts) < 5 or not wheel.name.endswith(".whl"):
        raise SystemExit(f"{wheel}: not a wheel file name (name-version-python-abi-platform.whl)")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def stale_wheels(folder: Path, installed=None) -> list[Path]:
    """The wheels in ``folder`` whose version this interpreter does not already import: the
    ones ``run`` installs. Wheels it already has (the CPU dry run's venv has them all) are left
    out, so a compiled wheel built for the GPU machine's Python is never installed here."""
    installed = installed or _installed_version
    wheels = sorted(folder.glob("*.whl"))
    names = [wheel_name_version(w)[0] for w in wheels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"{folder}: more than one wheel of {twice}; keep one version of each")
    return [w for w in wheels if installed(wheel_name_version(w)[0]) != wheel_name_version(w)[1]]


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------ what a run records
def versions() -> dict:
    """Library versions and where each was imported from (the carried wheels or the machine's)."""
    import importlib

    out = {"python": platform.python_version(), "executable": sys.executable}
    for name in VERSIONS:
        try:
            module = importlib.import_module(name)
            where = getattr(module, "__file__", None)
            out[name] = {"version": metadata.version(name), "from": str(Path(where).parent.parent) if where else None}
        except (ImportError, metadata.PackageNotFoundError):
            out[name] = None
    return out


def nvidia_smi() -> str:
    """The GPU's name, memory, driver and clocks as nvidia-smi reports them, or "no GPU"."""
    query = "name,memory.total,driver_version,clocks.max.sm,clocks.sm,power.limit,temperature.gpu"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "no GPU"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "no GPU"


def device() -> dict:
    import torch
    from scd.core.environment import cpu_model

    info = {"gpu": "no GPU", "nvidia_smi": nvidia_smi(), "cpu": cpu_model()[0], "cores": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {"gpu": torch.cuda.get_device_name(0), "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                 "multiprocessors": p.multi_processor_count, "capability": f"{p.major}.{p.minor}",
                 "cuda": torch.version.cuda, "bf16_supported": torch.cuda.is_bf16_supported()}
    return info


class Timer:
    """Runs stages, each with its wall time and peak GPU memory (``max_memory_allocated``, None
    without a GPU), and rewrites the record after each one, a failed one too (with its error)."""

    def __init__(self, record: dict, path: Path):
        import torch

        self.torch, self.record, self.path, self.start = torch, record, path, time.time()
        self.cuda = torch.cuda.is_available()

    def __call__(self, name: str, fn):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        t0, error = time.time(), None
        try:
            result = fn()
            if self.cuda:
                self.torch.cuda.synchronize()
            return result
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._end(name, t0, error)

    def _end(self, name: str, t0: float, error: str | None):
        row = {"stage": name, "wall_s": round(time.time() - t0, 2),
               "peak_gpu_gib": round(self.torch.cuda.max_memory_allocated() / 2**30, 3) if self.cuda else None}
        if error:
            row["error"] = error
        self.record["stages"].append(row)
        self.save()
        peak = "no GPU" if row["peak_gpu_gib"] is None else f"{row['peak_gpu_gib']:.2f} GiB"
        print(f"[gpu_run] {name}: {row['wall_s']:.1f} s, peak GPU memory {peak}" + (f", FAILED: {error}" if error else ""),
              flush=True)

    def save(self):
        from scd.core.io import write_json

        self.record["total_s"] = round(time.time() - self.start, 2)
        write_json(self.path, self.record)


def scores(runs) -> dict:
    """Test scores by model, as ``collect`` reports them."""
    keep = ["primary", "accuracy", "kappa", "macro_f1", "exact_f1", "partial_f1", "n_unparsed", "gold_loss",
            "train_s", "select_s"]
    return {row["model"]: {k: row[k] for k in keep if k in row and row[k] == row[k]} for row in runs.to_dict("records")}


def export_tar(cfg, runs, records, out: Path):
    """The package's export of the run (runs.csv, per-item rows, trajectories, stages, curves,
    weights) and its config, packed into one file; returns ``runs``."""
    from scd.analysis.export import export
    from scd.core.io import write_json

    with tempfile.TemporaryDirectory() as tmp:
        folder = export(cfg, runs, records, tmp)
        write_json(folder / "config.json", cfg.to_dict())
        with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname=f"results_{cfg.profile}")
    return runs


def deploy(cfg, task: str, teacher, student, out: Path, items: int, decode, prefill) -> list[dict]:
    """``benchmarks/deployment.py`` on the SFT teacher and student: the same work for both."""
    import deployment
    from scd.core.io import write_csv
    from scd.stages.base_sft import task_splits
    from scd.train.evaluate import new_token_budget
    from scd.train.models import load_tokenizer

    tok = load_tokenizer(teacher.best_path)
    splits = task_splits(cfg, task)
    table = deployment.table({"teacher": teacher.best_path, "student": student.best_path}, tok,
                             splits["test"][:items], cfg, new_token_budget(task, splits["train"], tok, cfg),
                             decode_lengths=decode, prefill_lengths=prefill)
    ratios = deployment.ratios(table)
    write_csv(out / "deployment.csv", table)
    write_csv(out / "deployment_ratios.csv", ratios)
    print(ratios.to_markdown(index=False, floatfmt=".4g"), flush=True)
    return ratios[["measure", "batch", "length", "unit", "student_advantage"]].to_dict("records")


def run(args) -> int:
    import scd  # noqa: F401  (pins the CPU kernels before torch loads)
    import torch

    from scd.cli import parse_overrides
    from scd.core.config import get_config
    from scd.run.reproduce import collect
    from scd.stages.base_sft import base_model_stage, sft_stage, tokenizer_stage
    from scd.stages.distill import cache_stage, distill_stage

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = get_config(args.profile, tasks=(args.task,), seeds=(args.seed,), **parse_overrides(args.set))
        decode, prefill = _ints(args.decode), _ints(args.prefill)
    except ValueError as exc:  # a bad profile, task or override: one line, before anything runs
        raise SystemExit(f"gpu_run run: {exc}") from None
    notes = []
    if cfg.bf16 and not torch.cuda.is_available():
        cfg = cfg.replace(bf16=False)  # CPU autocast to bf16 is slow or missing; the stages are keyed by it
        notes.append("bf16 is a GPU setting: without a GPU this run trained in float32")
    record = {"profile": cfg.profile, "task": args.task, "seed": args.seed, "overrides": args.set or [],
              "methods": list(cfg.methods), "bf16": cfg.bf16, "notes": notes, "device": device(),
              "versions": versions(), "stages": [], "params": {}, "scores": {}}
    timed = Timer(record, out / "gpu_run.json")
    print(f"[gpu_run] {cfg.profile} on {args.task}, seed {args.seed}: {record['device']['gpu']}, torch "
          f"{torch.__version__}, transformers {record['versions']['transformers']['version']}", flush=True)
    timed("tokenizer", lambda: tokenizer_stage(cfg))
    for role in ("teacher", "student"):
        _, base = timed(f"base LM {role}", lambda: base_model_stage(cfg, role))
        record["params"][role] = base.params
        record[f"base_{role}"] = {k: base.details.get(k) for k in ("steps", "tokens", "final_loss", "corpus_tokens")}
    sft = {}
    for role in ("teacher", "student"):
        sft[role] = timed(f"{role} SFT", lambda: sft_stage(cfg, role, args.task, args.seed))
        record[f"{role}_sft"] = {"train_s": sft[role].train_s, "eval_s": sft[role].eval_s, "best": sft[role].best,
                                 "dev": [t.dev.primary for t in sft[role].trajectory], "n": sft[role].n}
    _, cache = timed("target cache", lambda: cache_stage(cfg, sft["teacher"], args.task))
    record["target_cache"] = {"build_s": cache.build_s, "kl_from_best": cache.kl_from_best}
    failed = {}  # a one-shot GPU run keeps going past a failed method or benchmark, and says so
    for method in cfg.methods:
        try:
            info = timed(f"distill {method}", lambda: distill_stage(cfg, method, args.task, args.seed))
        except Exception as exc:
            failed[method] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        record[method] = {"train_s": info.train_s, "select_s": info.select_s, "best": info.best,
                          "checkpoints": [s.checkpoint for s in info.stages], "dev": [s.dev.primary for s in info.stages]}
    done = cfg.replace(methods=tuple(m for m in cfg.methods if m not in failed))
    runs = timed("collect and export", lambda: export_tar(done, *collect(done), out))
    record["scores"] = scores(runs)
    try:
        record["deployment_student_advantage"] = timed(
            "deployment", lambda: deploy(cfg, args.task, sft["teacher"], sft["student"], out, args.deploy_items,
                                         decode, prefill))
    except Exception as exc:
        failed["deployment"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    record["failed"] = failed
    timed.save()
    print(f"[gpu_run] done in {record['total_s']:.0f} s; test scores: "
          + ", ".join(f"{m} {s['primary']:.3f}" for m, s in record["scores"].items())
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"expected comma-separated integers such as 64,256, got {text!r}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the chain and the deployment benchmark, timed")
    r.add_argument("--profile", default="gpu")
    r.add_argument("--task", default="crade")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default=str(ROOT / "results" / "gpu"))
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a profile field")
    r.add_argument("--deploy-items", type=int, default=100, help="test prompts for the latency figure")
    r.add_argument("--decode", default="64,256", help="fixed numbers of new tokens for decode throughput")
    r.add_argument("--prefill", default="128,256", help="fixed prompt lengths for prefill throughput")
    d = sub.add_parser("data-files", help="the data files the chain reads, checked against their checksums")
    d.add_argument("--profile", default="gpu")
    d.add_argument("--task", default="crade")
    d.add_argument("--no-verify", action="store_true", help="list them without reading SCD_DATA_DIR")
    w = sub.add_parser("stale-wheels", help="the carried wheels this interpreter lacks in their version")
    w.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    from scd.core.io import DataError

    if args.command == "run":
        return run(args)
    try:
        if args.command == "data-files":
            files = data_files(args.profile, args.task)
            if not args.no_verify:
                from scd.data.files import data_dir, verify

                verify(data_dir(), files)
            print("\n".join(files))
            return 0
    except (ValueError, DataError) as exc:  # a bad profile, task or data folder: one line
        raise SystemExit(f"gpu_run data-files: {exc}") from None
    if not args.folder.is_dir():
        raise SystemExit(f"no wheel folder {args.folder}: run `bash benchmarks/gpu_check.sh prepare` first")
    print("\n".join(str(w) for w in stale_wheels(args.folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
