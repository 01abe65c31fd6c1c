#!/usr/bin/env bash
# Speed Dating benchmark (issues 5, 20, 17): the three protocols (20% of pairs held out,
# over seeds 42, 7 and 1 with mean and spread; whole evenings held out; each held-out
# evening replayed), every scorer side by side, matchwise's people ranking scored by
# serving's own function. Pre-date columns only. About 1 minute of CPU on two cores.
#
#   benchmarks/speed_dating/run.sh [SPEED_DATING_CSV] [OUT_DIR]
#
# Writes OUT_DIR/results.json (with provenance); `matchwise benchmark speed-dating CSV`
# without --json prints the same figures as tables.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA="${1:-../shared/data/speed-dating-waves-1-10/speed-dating-waves-1-10.csv}"
OUT="${2:-benchmarks/speed_dating}"
MATCHWISE="${MATCHWISE:-.venv/bin/matchwise}"

"$MATCHWISE" benchmark speed-dating "$DATA" --json > "$OUT/results.json"
