"""One numerical path for every x86-64 CPU.

Float results depend on which kernels a CPU runs: ATen picks vectorised kernels by instruction
set (AVX2 or AVX-512) and MKL picks a GEMM branch by CPU (and, on its fastest branches, by
memory alignment). Measured on this project's base-LM pretraining, an Intel AVX-512 machine and
an AMD AVX2 machine give different weights by default and the same weights once ATen is held
at AVX2 and MKL at its COMPATIBLE branch (docs/measurements.md). So importing ``scd`` sets those
switches before torch loads, for this process and every process it starts (they inherit the
environment: notebook kernels, accelerate workers).

``SCD_NATIVE_KERNELS=1`` turns the pin off (faster on AVX-512, results then depend on the CPU
kind); a switch already set in the environment is kept, and the fingerprint records what was
in force.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings

SWITCHES = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
OFF = "SCD_NATIVE_KERNELS"


def wanted(environ=os.environ, machine: str | None = None) -> dict[str, str]:
    """The switches this process should run with (none off x86-64 or when turned off)."""
    if environ.get(OFF, "") not in ("", "0"):
        return {}
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return {}
    return dict(SWITCHES)


def pin(environ=os.environ) -> dict[str, str]:
    """Set the missing switches; warn when torch loaded first, since ATen has then chosen already."""
    added = {k: v for k, v in wanted(environ).items() if k not in environ}
    environ.update(added)
    if added and environ is os.environ and "torch" in sys.modules:
        warnings.warn("torch was imported before scd, so the pinned CPU kernels may not be in force; "
                      "import scd first (or set " + ", ".join(f"{k}={v}" for k, v in added.items()) +
                      " before starting Python)", RuntimeWarning, stacklevel=3)
    return added


def probe() -> str:
    """A checksum of one MKL matrix product and one vectorised ATen reduction on fixed inputs:
    equal probes mean the same kernels, whatever the CPU's name (16 hex digits)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(97, 203, generator=g), torch.randn(203, 71, generator=g)
    x = a @ b
    y = torch.log_softmax(x * 0.37, dim=-1)
    digest = hashlib.sha256(x.numpy().tobytes())
    digest.update(y.numpy().tobytes())
    return digest.hexdigest()[:16]


def in_force() -> dict:
    """What this process computes with: the switches as set, ATen's capability and the probe."""
    import torch

    return {"switches": {k: os.environ.get(k) for k in SWITCHES},
            "native": os.environ.get(OFF, "") not in ("", "0"),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "probe": probe()}
