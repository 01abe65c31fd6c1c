#!/usr/bin/env bash
# Start (or stop) a throwaway Redis server for the test suite.
#   scripts/redis-test-server.sh start   -> prints the redis:// URL on stdout
#   scripts/redis-test-server.sh stop
# Installs Redis from Debian's packages when it is missing. Loopback only, port
# $REDIS_PORT, no persistence (nothing is written to disk).
set -euo pipefail

REDIS_PORT="${MATCHWISE_TEST_REDIS_PORT:-56379}"
REDIS_DIR="${MATCHWISE_TEST_REDIS_DIR:-/tmp/matchwise-test-redis}"
URL="redis://127.0.0.1:$REDIS_PORT/0"

ensure_installed() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing Redis from Debian's packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends redis-server >&2
  fi
}

running() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

start() {
  ensure_installed
  if running; then
    echo "$URL"
    return 0
  fi
  mkdir -p "$REDIS_DIR"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" \
    --appendonly no --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" \
    --logfile "$REDIS_DIR/redis.log" >&2
  for _ in $(seq 1 50); do
    running && { echo "$URL"; return 0; }
    sleep 0.1
  done
  echo "redis-server did not answer on port $REDIS_PORT; see $REDIS_DIR/redis.log" >&2
  return 1
}

stop() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
