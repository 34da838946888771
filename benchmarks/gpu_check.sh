#!/usr/bin/env bash
# The GPU check: one task's whole chain of the `gpu` profile and the deployment benchmark on one
# GPU, in two modes (docs/reproducing.md, "The GPU check"):
#
#   bash benchmarks/gpu_check.sh prepare   # here: internet, the data, the project's venv
#   bash benchmarks/gpu_check.sh run       # there: offline, the machine's own python3 with CUDA torch
#
# prepare  fills $CARRY (default gpu_carry/, ignored by git) with the benchmark files the chain
#          reads (copied from SCD_DATA_DIR, checksums verified) and the wheels, in this venv's
#          versions, of the packages the GPU machine lacks or has in other versions, then prints
#          its size: a lent machine takes 64 MiB of working tree and carried folders together.
# run      installs the carried wheels whose versions the interpreter lacks into $SITE and puts it
#          first on PYTHONPATH (not a venv: the machine's python3 is itself a venv holding the CUDA
#          torch, and a venv made from it would not see that torch), points SCD_DATA_DIR at the
#          carried data and runs benchmarks/gpu_run.py. $OUT (default results/gpu) gets
#          gpu_run.json (wall time and peak GPU memory per stage, test scores, the device, the
#          library versions), deployment.csv, deployment_ratios.csv, results.tar.gz,
#          nvidia_smi.txt and gpu_check.log: six files, within the eight a lent machine returns.
#
# Settings, from the environment (folders relative to where the command is typed): PROFILE (gpu),
# TASK (crade), SEED (0), CARRY (gpu_carry), OUT (results/gpu), PYTHON (prepare: .venv/bin/python
# if present; run: python3), SCD_DATA_DIR (prepare: the benchmark data), WHEELS (prepare: 1; 0
# carries the data only), WHEEL_PYTHON (3.12: the GPU machine's Python), SITE (/tmp/scd-gpu-site).
# Arguments after `run` go to gpu_run.py. The CPU dry run, as tests/test_gpu_check.py runs it:
#   PROFILE=smoke bash benchmarks/gpu_check.sh prepare && PROFILE=smoke bash benchmarks/gpu_check.sh run
set -euo pipefail
HERE=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD
# folders given relative mean the caller's folder; the defaults are the repository's
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$HERE/$1" ;; esac; }
CARRY=$(abs "${CARRY:-$REPO/gpu_carry}") OUT=$(abs "${OUT:-$REPO/results/gpu}") SITE=$(abs "${SITE:-/tmp/scd-gpu-site}")
[ -z "${SCD_DATA_DIR:-}" ] || SCD_DATA_DIR=$(abs "$SCD_DATA_DIR")
PROFILE=${PROFILE:-gpu} TASK=${TASK:-crade} SEED=${SEED:-0} WHEELS=${WHEELS:-1} WHEEL_PYTHON=${WHEEL_PYTHON:-3.12}
LIMIT=$((64 * 1024 * 1024))
# transformers (the machine: 5.17; the package needs this venv's), what it checks at import
# (huggingface_hub >= 2.4, tokenizers, regex), accelerate (its Trainer), and what huggingface_hub
# 2.4 imports that the machine lacks or may have too old (httpx2, httpcore2, truststore, anyio,
# idna, h11). `datasets` and `kernels` stay behind: transformers imports them only if present,
# and the chain reads no datasets folder.
CARRIED="transformers huggingface_hub tokenizers accelerate regex httpx2 httpcore2 truststore anyio idna h11"

die() { echo "gpu_check: $*" >&2; exit 1; }

prepare() {
  local py=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  [ -n "${SCD_DATA_DIR:-}" ] || die "set SCD_DATA_DIR to the benchmark data folder (e.g. ../shared/data)"
  local files
  files=$("$py" benchmarks/gpu_run.py data-files --profile "$PROFILE" --task "$TASK") || exit 1
  rm -rf "$CARRY/data" "$CARRY/wheels"
  mkdir -p "$CARRY/data"
  for rel in $files; do
    mkdir -p "$CARRY/data/$(dirname "$rel")"
    cp "$SCD_DATA_DIR/$rel" "$CARRY/data/$rel"
  done
  if [ "$WHEELS" = 1 ]; then
    local pins
    pins=$("$py" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in sys.argv[1:]))' $CARRIED) || die "this Python lacks one of: $CARRIED"
    # shellcheck disable=SC2086
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 -d "$CARRY/wheels" $pins || die "pip download failed (offline? WHEELS=0 carries the data only)"
  fi
  printf 'profile %s, task %s, prepared %s\n' "$PROFILE" "$TASK" "$(date -u +%FT%TZ)" >"$CARRY/carry.txt"
  local size
  size=$(du -sb "$CARRY" | cut -f1)
  (cd "$CARRY" && find . -type f -printf '%10s  %P\n' | sort -k2)
  echo "$CARRY: $size bytes ($(awk "BEGIN{printf \"%.1f\", $size / 1048576}") MiB; a lent machine takes 64 MiB with the working tree)"
  [ "$size" -le "$LIMIT" ] || die "$CARRY is over 64 MiB"
}

run_chain() {
  local py=${PYTHON:-python3}
  echo "gpu_check run: profile $PROFILE, task $TASK, seed $SEED, $(date -u +%FT%TZ), $(uname -n)"
  if [ -d "$CARRY/wheels" ]; then
    local stale
    stale=$("$py" benchmarks/gpu_run.py stale-wheels "$CARRY/wheels")
    if [ -n "$stale" ]; then
      echo "installing into $SITE:" $stale
      # shellcheck disable=SC2086
      "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $stale
      echo "installed in ${SECONDS} s"
    else
      echo "the carried wheels are installed already"
    fi
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "no carried wheels: the interpreter's own packages"
  fi
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" SCD_DATA_DIR="$CARRY/data" PYTHONUNBUFFERED=1
  export SCD_QUIET=${SCD_QUIET:-1} HF_HUB_DISABLE_PROGRESS_BARS=${HF_HUB_DISABLE_PROGRESS_BARS:-1}
  if command -v nvidia-smi >/dev/null; then nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1 || echo "no GPU" >"$OUT/nvidia_smi.txt"
  else echo "no GPU" >"$OUT/nvidia_smi.txt"; fi
  "$py" benchmarks/gpu_run.py run --profile "$PROFILE" --task "$TASK" --seed "$SEED" --out "$OUT" "$@"
  echo "gpu_check run: ${SECONDS} s in all"
}

case "${1:-}" in
  prepare) shift; prepare ;;
  run)
    shift
    [ -d "$CARRY/data" ] || die "no $CARRY/data: run 'bash benchmarks/gpu_check.sh prepare' first, and carry $CARRY"
    mkdir -p "$OUT"
    run_chain "$@" 2>&1 | tee "$OUT/gpu_check.log"
    ;;
  *) die "usage: bash benchmarks/gpu_check.sh prepare|run [gpu_run.py arguments]" ;;
esac
