#!/usr/bin/env bash
# One leg (under 8 minutes) of the paper-scale online archives on a lent GPU machine
# (bench/gpu_archive_legs.py; usage and how to bring the results back: bench/README.md).
#
#   bash bench/gpu_archive_legs.sh --prepare   here, once: MNIST (gzipped) and the CIFAR-10 JPEG copy
#                                              (one tar.gz, about 20 MB) into gpu_data/, kept out of git
#   bash bench/gpu_archive_legs.sh [MINUTES]   on the device machine (the `run` tool, carry ["gpu_data"]):
#                                              the runs for MINUTES (default 4.5; each stops at its next
#                                              checkpoint after that), then every run file and partial
#                                              checkpoint it wrote into $OUT/archive_legs.tar, with
#                                              $OUT/legs.json and the log $OUT/log
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .git/info
    grep -qxF '/gpu_data/' .git/info/exclude 2>/dev/null || echo '/gpu_data/' >> .git/info/exclude
    exec "$PY" bench/gpu_archive_legs.py prepare --data-root "${SHORTBIAS_DATA:?set SHORTBIAS_DATA to the data folder}"
fi

OUT="${OUT:-$PWD/gpu_legs_out}"
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
since=$(date +%s)
{
    date -u +"start %Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || true
    # SIGINT at the hard limit stops a run as Ctrl-C does: locks released, the last checkpoint kept.
    timeout -s INT 450 "$PY" bench/gpu_archive_legs.py leg --out "$OUT" --minutes "${1:-4.5}"
    echo "leg exit status $? (0: all finished, 75: stopped for time, resumable; 130/124: hard limit)"
    "$PY" bench/gpu_archive_legs.py pack --out "$OUT" --since "$since"
    date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$OUT/log"
