#!/bin/sh
# Migrate the store, then run `matchwise "$@"` (default: serve) as PID 1's only child.
# MIGRATE_ON_START=0 skips the migration (e.g. when a Kubernetes init container or a
# one-off `matchwise db upgrade` has run it already).
set -eu
if [ "${MIGRATE_ON_START:-1}" != "0" ]; then
    matchwise db upgrade
fi
exec matchwise "$@"
