#!/usr/bin/env bash
# Installs the Debian packages the test suite and the browser tests need, when they are missing:
# PostgreSQL 15 (server binaries, for the store tests), Chromium (driven by Playwright) and nginx (the one-port
# front of scripts/serve_all.py, started by the tests on a free port).
#   scripts/system_deps.sh                  the test suite's packages
#   scripts/system_deps.sh --image ENGINE   what `make image` needs: podman, runc and debootstrap (ENGINE=podman)
# Idempotent and quick when everything is present. Needs root (CI runs as root); otherwise prints
# what is missing and exits 0 so a developer can still run the non-browser, SQLite-only tests.
set -euo pipefail
need=()
if [ "${1:-}" = --image ]; then
  engine=${2:-podman}
  if [ "$engine" = podman ]; then
    command -v podman >/dev/null 2>&1 || need+=(podman)
    [ -x /usr/sbin/runc ] || need+=(runc)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  fi
  command -v curl >/dev/null 2>&1 || need+=(curl)
else
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system_deps: missing ${need[*]} (run as root, or: sudo apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "system_deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
# Debian's nginx package starts a system-wide server on port 80 where an init system runs; Vitrine runs its own.
if [[ " ${need[*]} " == *" nginx "* ]] && command -v service >/dev/null 2>&1; then
  service nginx stop >/dev/null 2>&1 || true
fi
