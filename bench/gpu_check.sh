#!/usr/bin/env bash
# One prepared command for a lent GPU machine: bounded slices of every paper-profile
# experiment, their throughput and projected full times (bench/gpu_check.py; bench/README.md).
#
#   bash bench/gpu_check.sh --prepare   here, once: MNIST (gzipped, about 11 MB) into gpu_data/,
#                                       which .git/info/exclude keeps out of git
#   bash bench/gpu_check.sh [ARGS]      on the device machine (the `run` tool, carry ["gpu_data"]):
#                                       writes $OUT/gpu_check.json and the log $OUT/log;
#                                       ARGS go to gpu_check.py (e.g. --only offline_smd)
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    src="${SHORTBIAS_DATA:?set SHORTBIAS_DATA to the data folder that holds MNIST/raw}/MNIST/raw"
    mkdir -p gpu_data/MNIST/raw
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        gzip -c "$src/$f" > "gpu_data/MNIST/raw/$f.gz" || exit 1
    done
    mkdir -p .git/info
    grep -qxF '/gpu_data/' .git/info/exclude 2>/dev/null || echo '/gpu_data/' >> .git/info/exclude
    du -sh gpu_data
    exit 0
fi

OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
{
    date -u +"start %Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 || true
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
    timeout 450 "$PY" bench/gpu_check.py --out "$OUT" "$@"
    echo "gpu_check.py exit status $?"
    date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$OUT/log"
