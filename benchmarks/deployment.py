"""Inference cost of teacher against student, measured as the paper reports it: the same work
for both models.

Tokens/s of free generation compares different work (a student that rambles to its budget
writes many more tokens than a teacher that stops after the answer), so this measures
- **decode**: tokens/s at a fixed number of new tokens, EOS ignored, from real prompts;
- **prefill**: prompt tokens/s of one forward pass at fixed prompt lengths;
- **latency**: seconds per item of the real evaluation (greedy, the task's token budget);
- **peak memory**: ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU the peak resident
  memory that loading the model and one forward pass add to a fresh interpreter (peak reset
  after the imports), so models do not inherit each other's peaks.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import torch

from scd.train.evaluate import generate
from scd.train.models import device_of, load_model


def _sync(model) -> None:
    if device_of(model).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, model, repeats: int) -> float:
    """Best of ``repeats`` wall times after one warm-up call (the least noisy estimate)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(model)
        start = time.perf_counter()
        fn()
        _sync(model)
        best = min(best, time.perf_counter() - start)
    return best


def _batch(prompts: list[list[int]], length: int, batch: int, device) -> torch.Tensor:
    """``batch`` real prompts cut or tiled to exactly ``length`` tokens."""
    rows = [(p * (length // max(len(p), 1) + 1))[:length] for p in prompts[:batch]]
    rows += [rows[i % len(rows)] for i in range(batch - len(rows))]
    return torch.tensor(rows, device=device)


@torch.no_grad()
def decode_tokens_per_s(model, prompts: list[list[int]], new_tokens: int, batch: int, pad_id: int,
                        prompt_len: int = 64, repeats: int = 3) -> float:
    """New tokens/s of greedy decoding at exactly ``new_tokens`` per sequence (EOS suppressed),
    with the prefill's share removed: (N - 1) tokens over t(N) - t(1)."""
    ids = _batch(prompts, prompt_len, batch, device_of(model))
    mask = torch.ones_like(ids)

    def run(n):
        return lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, use_cache=True, pad_token_id=pad_id)
    t_n, t_1 = _timed(run(new_tokens), model, repeats), _timed(run(1), model, repeats)
    return batch * (new_tokens - 1) / max(t_n - t_1, 1e-9)


@torch.no_grad()
def prefill_tokens_per_s(model, prompts: list[list[int]], length: int, batch: int, repeats: int = 3) -> float:
    ids = _batch(prompts, length, batch, device_of(model))
    return batch * length / _timed(lambda: model(input_ids=ids, use_cache=True), model, repeats)


def latency_s_per_item(model, tok, records: list[dict], cfg, new_tokens: int, batch: int = 1) -> float:
    start = time.perf_counter()
    generate(model, tok, records, cfg.replace(eval_batch_size=batch), new_tokens)
    return (time.perf_counter() - start) / len(records)


DECODE, PREFILL = "decode (fixed new tokens, EOS ignored)", "prefill (fixed prompt length)"
LATENCY, PARAMS, PEAK = "latency on the test prompts", "parameters", "peak memory"


def _row(measure: str, unit: str, value: float, batch: int | None = None, length: int | None = None) -> dict:
    return {"measure": measure, "batch": batch, "length": length, "unit": unit, "value": value}


def measure(path: str, tok, records: list[dict], cfg, budget: int, decode_lengths=(64, 256),
            prefill_lengths=(128, 256), batches=(1, 16)) -> list[dict]:
    """Every figure of one model as rows, in this process (peak memory: GPU only, see
    :func:`peak_rss_mb`)."""
    model = load_model(path).eval()
    on_gpu = device_of(model).type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    prompts = [tok(r["prompt"])["input_ids"] for r in records]
    rows = [_row(PARAMS, "millions", sum(p.numel() for p in model.parameters()) / 1e6)]
    for b in batches:
        rows += [_row(DECODE, "new tokens/s", decode_tokens_per_s(model, prompts, n, b, tok.pad_token_id), b, n)
                 for n in decode_lengths]
        rows += [_row(PREFILL, "prompt tokens/s", prefill_tokens_per_s(model, prompts, n, b), b, n)
                 for n in prefill_lengths]
        rows.append(_row(LATENCY, "s per item", latency_s_per_item(model, tok, records, cfg, budget, b), b))
    if on_gpu:
        rows.append(_row(PEAK, "MiB allocated (GPU)", torch.cuda.max_memory_allocated() / 2**20))
    return rows


_CHILD = """
import re, resource, sys
import torch
from scd.train.models import device_of, load_model

def kib(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

try:
    before = kib("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # Linux: the peak (VmHWM) restarts from now
except OSError:  # not Linux: the whole process's peak, import included
    before = 0
model = load_model(sys.argv[1]).eval()
with torch.no_grad():
    model(input_ids=torch.ones(1, 8, dtype=torch.long, device=device_of(model)))
peak = kib("VmHWM") if before else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak - before)
"""


def peak_rss_mb(path: str) -> float:
    """Peak resident memory that loading the model and one forward pass add to a fresh interpreter
    holding torch and scd.train.models: on Linux the peak is reset after the imports (``clear_refs``),
    so an import's transient peak, larger than a small model, cannot hide it. A fresh
    ``python -c``, not a multiprocessing child, which would re-import the caller's main module."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         timeout=600, check=True)
    return int(out.stdout.split()[-1]) / (2**20 if sys.platform == "darwin" else 2**10)  # KiB on Linux


def table(models: dict[str, str], tok, records: list[dict], cfg, budget: int, **lengths) -> pd.DataFrame:
    """Long table (model, measure, batch, length, unit, value) for ``{name: model path}``."""
    on_gpu = torch.cuda.is_available()
    rows = []
    for name, path in models.items():
        figures = measure(path, tok, records, cfg, budget, **lengths)
        if not on_gpu:
            figures.append(_row(PEAK, "MiB added by the model (peak RSS)", peak_rss_mb(path)))
        rows += [{"model": name} | r for r in figures]
    return pd.DataFrame(rows)


def ratios(frame: pd.DataFrame, a: str = "teacher", b: str = "student") -> pd.DataFrame:
    """``b`` relative to ``a`` per measure: speed ratios as b/a (above 1: b is faster), latency,
    memory and size as a/b (above 1: b is smaller or quicker)."""
    keys = ["measure", "batch", "length", "unit"]
    wide = frame.astype({"batch": "string", "length": "string"}).fillna({"batch": "", "length": ""}) \
        .pivot_table(index=keys, columns="model", values="value", aggfunc="first").reset_index()
    faster = wide.unit.str.endswith("/s")
    wide[f"{b}_advantage"] = wide[b].where(faster, wide[a]) / wide[a].where(faster, wide[b])
    return wide.dropna(subset=[a, b])
