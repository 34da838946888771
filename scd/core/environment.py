"""What a number depends on besides the config: the machine and the library versions.

Float results are bitwise repeatable only on the same CPU kind, thread count and versions
(kernels pick code paths by instruction set, and reductions are split by thread), so every
results folder records this fingerprint and the reproduction report compares it.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "numpy", "pandas", "scikit-learn")
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu_model() -> tuple[str, list[str]]:
    """The CPU's model name and the vector-instruction flags that change kernel choice."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = {}
    for line in text.splitlines():  # the first CPU's lines; all CPUs of a machine agree
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    return fields.get("model name", platform.machine()), [f for f in ISA_FLAGS if f in flags]


def threads_wanted(local_world_size: int = 1) -> int:
    """``SCD_THREADS`` if set (pin it to compare machines with different core counts), else all
    cores shared by the processes of this node."""
    pinned = os.environ.get("SCD_THREADS")
    if pinned:
        if not pinned.isdigit() or int(pinned) < 1:
            raise ValueError(f"SCD_THREADS={pinned!r}: expected a positive integer")
        return int(pinned)
    return max(1, (os.cpu_count() or 1) // local_world_size)


def fingerprint() -> dict:
    import torch

    name, flags = cpu_model()
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": name, "isa": flags,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "packages": versions}


def differences(a: dict | None, b: dict | None) -> list[str]:
    """Human-readable list of what differs between two fingerprints (empty: same kind)."""
    if not a or not b:
        return ["no fingerprint recorded for " + ("the reference" if not a else "this run")]
    out = []
    for key in ("python", "machine", "cpu", "isa", "torch_cpu_capability", "threads"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} vs {b.get(key)}")
    for pkg in sorted(set(a.get("packages", {})) | set(b.get("packages", {}))):
        va, vb = a.get("packages", {}).get(pkg), b.get("packages", {}).get(pkg)
        if va != vb:
            out.append(f"{pkg}: {va} vs {vb}")
    return out
