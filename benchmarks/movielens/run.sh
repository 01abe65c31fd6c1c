#!/usr/bin/env bash
# MovieLens quality benchmark: popularity, EASE, implicit ALS and BPR, the two-tower and
# the hybrid under the RecBole protocol (ratings >= 3, 10-core, seeded random 8:1:1 per
# user, full ranking; split seeds 2020, 1 and 2) and the per-user temporal protocol (no
# seed: one split). Every model with hyperparameters tries the same number of
# configurations (TUNING_BUDGET in src/matchwise/bench/movielens.py), chosen on
# validation; each row carries its difference to the strongest baseline with a paired
# bootstrap interval over users, and the JSON its provenance (seeds, data hash, package
# versions, git commit). About 35 minutes for the RecBole protocol on ML-100K on two
# cores, 12 for the temporal one; the two-tower's fits are most of it.
#
#   benchmarks/movielens/run.sh [MOVIELENS_FOLDER] [OUT_DIR] [PROTOCOLS]
#
# Writes OUT_DIR/results-<protocol>.json and prints a table per protocol.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA="${1:-/work/shared/data/movielens-100k}"
OUT="${2:-benchmarks/movielens}"
PROTOCOLS="${3:-recbole temporal}"
PYTHON="${PYTHON:-.venv/bin/python}"
export OPENBLAS_NUM_THREADS=1  # implicit parallelises itself; a BLAS pool on top slows it
export OMP_WAIT_POLICY=PASSIVE

for protocol in $PROTOCOLS; do
  "$PYTHON" -m matchwise.bench.movielens "$DATA" --protocol "$protocol" --k 10 \
    --out "$OUT/results-$protocol.json"
done
