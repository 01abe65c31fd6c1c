#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster for the test suite.
#   scripts/pg-test-server.sh start   -> prints the SQLAlchemy URL on stdout
#   scripts/pg-test-server.sh stop
# Installs PostgreSQL from Debian's packages when it is missing. Runs as the
# unprivileged 'postgres' user (pg_ctl refuses root), on loopback, port $PG_PORT.
set -euo pipefail

PG_PORT="${MATCHWISE_TEST_PG_PORT:-55432}"
PG_DATA="${MATCHWISE_TEST_PG_DATA:-/tmp/matchwise-test-pg}"
PG_DB="matchwise_test"

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  return 1
}

as_postgres() {
  if [ "$(id -u)" = "0" ]; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

ensure_installed() {
  if ! find_bin >/dev/null; then
    echo "installing PostgreSQL from Debian's packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
  if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
  fi
}

start() {
  ensure_installed
  local bin; bin="$(find_bin)"
  if as_postgres "$bin/pg_ctl -D $PG_DATA status" >/dev/null 2>&1; then
    echo "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB"
    return 0
  fi
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA"
  [ "$(id -u)" = "0" ] && chown postgres "$PG_DATA"
  as_postgres "$bin/initdb -D $PG_DATA -U postgres -A trust --no-sync -E UTF8 >/dev/null"
  as_postgres "$bin/pg_ctl -D $PG_DATA -l $PG_DATA/server.log -w -o \"-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100\" start >/dev/null"
  as_postgres "$bin/createdb -h 127.0.0.1 -p $PG_PORT -U postgres $PG_DB"
  echo "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB"
}

stop() {
  local bin; bin="$(find_bin)" || return 0
  as_postgres "$bin/pg_ctl -D $PG_DATA -m fast stop >/dev/null 2>&1" || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
