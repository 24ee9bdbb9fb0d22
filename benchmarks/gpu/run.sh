#!/usr/bin/env bash
# The prepared GPU check: run it whenever a GPU machine is lent (under 8 minutes on one H100/H200).
# It measures what only a GPU can (parts and sizes: driver.py's docstring) and writes
# gpu.json and gpu_run.log into $OUT when the device tool sets it, else into benchmarks/results/:
#   seeded sampling CPU == CUDA on the HF backend, CMAB lean vs eager in bf16, CMAB P4 with CUDA
#   allocator peaks (cold and warm), P3 on the HF backend (engine path vs the seed request pattern).
#
# What CANNOT run on a lent machine, so spend no GPU time on it: anything needing vLLM (P2/P3 on
# vLLM, prefix-cache counts), Ray (every pipeline job, P2, Ray Data shaping, Ray Train SFT, building
# the warm start) or verl (GRPO). The machine has torch and transformers but none of these, no
# package registry, and one call carries at most 64 MiB (vLLM's and Ray's wheels alone are larger).
#
# Models: the warm-started tiny model (8.5 MiB) and its corpus's test split are CARRIED, not built
# there (building them needs Ray Train); the random CMAB model is built there in seconds. The wheels
# the machine lacks (transformers/tokenizers at gradus's pins, the verifiers' pebble and rapidfuzz)
# are carried too: about 28 MiB in all.
#
# 1. Here, on the development machine (the venv and the cached embedded default), once:
#      bash benchmarks/gpu/run.sh prepare        # fills benchmarks/gpu/carry/ (git-ignored)
# 2. Through the device tool, from the repository root:
#      run(command="bash benchmarks/gpu/run.sh", carry=["benchmarks/gpu/carry"], timeout_s=540)
#    then copy the returned gpu.json over benchmarks/results/gpu.json (gpu_run.log comes back too).
# CPU smoke (every code path at toy sizes, no GPU, nothing carried; the test suite runs it):
#      bash benchmarks/gpu/run.sh --cpu-smoke [--out PATH]
set -uo pipefail
cd "$(dirname "$0")/../.."
CARRY=benchmarks/gpu/carry
HERE_PY=${PYTHON:-.venv/bin/python}

case "${1:-}" in
  prepare) exec "$HERE_PY" benchmarks/gpu/driver.py --prepare ;;
  --cpu-smoke) exec "$HERE_PY" benchmarks/gpu/driver.py "$@" ;;
esac

# On the lent machine: its python3 holds torch; the carried wheels go first on the path.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gradus-site "$CARRY"/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/gradus-site PYTHONUNBUFFERED=1
DEST=${OUT:-benchmarks/results}  # the device tool's $OUT comes back; elsewhere the results folder
# 470 s: the parts' own budget; gpu.json is rewritten after each part, so a stop keeps what finished
timeout 470 python3 benchmarks/gpu/driver.py --model "$CARRY/model" --corpus "$CARRY/corpus" --out "$DEST/gpu.json" "$@" 2>&1 \
  | tee "$DEST/gpu_run.log"
exit "${PIPESTATUS[0]}"
