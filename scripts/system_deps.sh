#!/usr/bin/env bash
# Installs the Debian packages the test suite and the browser tests need, when they are missing:
# PostgreSQL 15 (server binaries, for the store tests) and Chromium (driven by Playwright).
# Idempotent and quick when everything is present. Needs root (CI runs as root); otherwise prints
# what is missing and exits 0 so a developer can still run the non-browser, SQLite-only tests.
set -euo pipefail
need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system_deps: missing ${need[*]} (run as root, or: sudo apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "system_deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
