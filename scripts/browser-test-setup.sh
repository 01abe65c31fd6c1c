#!/usr/bin/env bash
# Install what the dashboard's browser tests need, when it is missing:
#   Debian's Chromium (/usr/bin/chromium; `playwright install` cannot download browsers
#   here) and the playwright package into the virtual environment (it is in the dev
#   extras; this covers a venv made before it was).
#   scripts/browser-test-setup.sh   -> prints the Chromium path on stdout
set -euo pipefail

VENV="${VENV:-.venv}"
CHROMIUM="${MATCHWISE_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  echo "installing Chromium from Debian's packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
if ! "$VENV/bin/python" -c "import playwright" >/dev/null 2>&1; then
  echo "installing playwright into $VENV..." >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "playwright>=1.40" >&2
fi
echo "$CHROMIUM"
