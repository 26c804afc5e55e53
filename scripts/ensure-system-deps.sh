#!/usr/bin/env bash
# System packages the test suite uses beyond Python: redis-server (every Redis test), Debian's
# `prometheus` (a real server scrapes the services) and `chromium` (the dashboard is loaded
# headless). Installs what is missing with apt-get when it can; if it cannot (no apt, no root,
# no network), the tests that need a missing binary skip and say which one.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-redis.sh || echo "ensure-system-deps: could not install redis-server" >&2
bash scripts/ensure-deploy-tools.sh || echo "ensure-system-deps: could not install kubectl (k8s tests fail in CI)" >&2

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null \
    || echo "ensure-system-deps: apt-get install ${missing[*]} failed; those tests will skip" >&2
else
  echo "ensure-system-deps: cannot install ${missing[*]} (no apt-get or no root); those tests will skip" >&2
fi
exit 0
