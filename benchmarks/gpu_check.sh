#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py), run by hand on a machine with one GPU:
#
#     benchmarks/gpu_check.sh                  # config.yaml's sizes on cuda:0, at most 8 minutes
#     benchmarks/gpu_check.sh --iterations 20  # any gpu_check.py option is passed on
#
# Paper-size NH-CSR and LIIF: training iterations/s and peak memory with and without
# training.amp, one 64x prediction (time, agreement with the CPU prediction of the same
# checkpoint), and the GPU-hours config.yaml's training would take. The table goes to stdout and,
# with its numbers as JSON, to $OUT (a lent machine's) or ${TMPDIR:-/tmp}/gpu_check.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: torch sees no CUDA device here (CPU mode: $python benchmarks/gpu_check.py --device cpu --tiny)" >&2
    exit 2
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
out=${OUT:-${TMPDIR:-/tmp}/gpu_check}
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
# the CPU reference prediction uses the host's cores; the budget is 8 minutes in all
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} timeout 480 \
    "$python" benchmarks/gpu_check.py --device "${DEVICE:-cuda}" --json "$out/gpu_check-$stamp.json" "$@" \
    | tee "$out/gpu_check-$stamp.md"
