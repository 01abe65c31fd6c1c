#!/usr/bin/env bash
# A long cached run on one `matchwise serve`: wrk for SECONDS, the server's RSS every
# 10 s, and (with INGEST_KEY) an item decision posted every ~0.1 s beside it, each of
# which drops its user's lists kept in memory. Runs on a workdir prepared by
# `benchmarks/serving/run.py --workdir W [--serve-on-postgres --postgres-url URL]`.
#
#   benchmarks/serving/soak.sh W DATABASE_URL [PORT] [SECONDS]
#   (DATABASE_URL: sqlite:///W/bench.db, or the PostgreSQL database run.py made,
#    .../matchwise_bench_serving; INGEST_KEY: from `matchwise keys create --scope ingest`)
# Prints wrk's JSON summary, the write statuses, and the RSS samples (seconds, kB).
set -euo pipefail

WORK="$1"
export MATCHWISE_DATABASE_URL="$2"
PORT="${3:-18500}"
SECONDS_TOTAL="${4:-300}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-$HERE/../../.venv/bin/python}"
KEY=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['key'])" \
  "$WORK/prepared.json")
export MATCHWISE_ARTIFACT_ROOT="$WORK/artifacts" MATCHWISE_REALTIME_REFRESH_ENABLED=false
export MATCHWISE_CACHE_MAX_AGE_SECONDS=604800  # as run.py: the prepared lists stay fresh
OUT="$(mktemp -d)"

(cd "$WORK" && exec "$PYTHON" -m matchwise serve --port "$PORT" --no-access-log) \
  >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 1
done

(for n in $(seq 0 10 "$SECONDS_TOTAL"); do
   echo "$n $(awk '/VmRSS/{print $2}' "/proc/$SERVER/status")"; sleep 10
 done >"$OUT/rss.txt") &
SAMPLER=$!
WRITER=""
if [ -n "${INGEST_KEY:-}" ]; then
  (while true; do
     body="{\"user_id\":\"u$((RANDOM % 10000))\",\"item_id\":\"e$((RANDOM % 10000))\",\"action\":\"register\"}"
     curl -s -o /dev/null -w "%{http_code}\n" -X POST -H "X-API-Key: $INGEST_KEY" \
       -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$PORT/v1/interactions"
     sleep 0.1
   done >"$OUT/writes.txt") &
  WRITER=$!
fi
BENCH_USERS=10000 BENCH_KEY="$KEY" wrk -t2 -c4 -d"${SECONDS_TOTAL}s" -s "$HERE/latency.lua" \
  "http://127.0.0.1:$PORT" | grep JSON
kill $SAMPLER ${WRITER:+$WRITER} 2>/dev/null || true
wait $SAMPLER ${WRITER:+$WRITER} 2>/dev/null || true
if [ -n "$WRITER" ]; then echo "writes (count status):"; sort "$OUT/writes.txt" | uniq -c; fi
echo "rss (seconds kB):"; cat "$OUT/rss.txt"
