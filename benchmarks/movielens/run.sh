#!/usr/bin/env bash
# MovieLens quality benchmark: popularity, EASE, implicit ALS and BPR under the RecBole
# protocol (ratings >= 3, 10-core, seeded random 8:1:1 per user, full ranking) and the
# per-user temporal protocol. About one minute per protocol for ML-100K on two cores.
#
#   benchmarks/movielens/run.sh [MOVIELENS_FOLDER] [OUT_DIR]
#
# Writes OUT_DIR/<dataset>-<protocol>.json and prints a table per protocol.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA="${1:-/work/shared/data/movielens-100k}"
OUT="${2:-benchmarks/movielens/results}"
PYTHON="${PYTHON:-.venv/bin/python}"
export OPENBLAS_NUM_THREADS=1  # implicit parallelises itself; a BLAS pool on top slows it

name="$(basename "$DATA")"
for protocol in recbole temporal; do
  "$PYTHON" -m matchwise.benchmark "$DATA" --protocol "$protocol" --k 10 \
    --out "$OUT/$name-$protocol.json"
done
