"""What a number depends on besides the config: the machine, the kernels and the library versions.

Float results are bitwise repeatable only on the same numerical path and versions: kernels pick
code paths by instruction set unless pinned (``scd.core.numerics``), and library releases change
numerics. Every results folder records this fingerprint and the reproduction report compares it.
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


def installed() -> dict[str, str]:
    """Every installed distribution's version, so the report can name each one that differs."""
    versions = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()
                if d.metadata["Name"]}
    return dict(sorted(versions.items()))


def fingerprint() -> dict:
    import torch

    from scd.core import numerics

    name, flags = cpu_model()
    versions = installed()
    versions.update({pkg: versions.get(pkg) for pkg in PACKAGES})  # the key ones, None when missing
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": name, "isa": flags,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "packages": dict(sorted(versions.items())),
            "packages_complete": True, "numerics": numerics.in_force()}


def differences(a: dict | None, b: dict | None) -> list[str]:
    """Human-readable list of what differs between two fingerprints (empty: same kind)."""
    if not a or not b:
        return ["no fingerprint recorded for " + ("the reference" if not a else "this run")]
    out = []
    for key in ("python", "machine", "cpu", "isa", "torch_cpu_capability", "threads"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} vs {b.get(key)}")
    pa, pb = a.get("packages", {}), b.get("packages", {})
    names = set(pa) | set(pb) if a.get("packages_complete") and b.get("packages_complete") else \
        (set(pa) & set(pb)) | set(PACKAGES)  # an older record lists only the key packages
    for pkg in sorted(names):
        va, vb = pa.get(pkg), pb.get(pkg)
        if va != vb:
            out.append(f"{pkg}: {va} vs {vb}")
    pa, pb = (x.get("numerics", {}).get("probe") for x in (a, b))
    if pa != pb:
        out.append(f"kernel probe: {pa} vs {pb}")
    return out


def bitwise_expected(a: dict | None, b: dict | None) -> bool:
    """Same kernels (equal probes), threads, Python and library versions: the CPU's name may differ."""
    if not (a and b and a.get("numerics", {}).get("probe")):
        return False
    kind = ("cpu", "isa", "torch_cpu_capability")
    return not differences(*({k: v for k, v in f.items() if k not in kind} for f in (a, b)))
