#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on a free local port, then stops and removes it.
#   scripts/with_postgres.sh CMD ARGS...
# The cluster's URL is exported as VITRINE_TEST_PG_URL (postgresql+psycopg://...). If PostgreSQL is not
# installed (and cannot be), the command still runs without that variable and the PG tests skip loudly.
# VITRINE_PG_OPTS adds server options, e.g. to profile: VITRINE_PG_OPTS="-c shared_preload_libraries=pg_stat_statements".
# PostgreSQL refuses to run as root: as root the cluster is owned by and run as the `postgres` user.
set -uo pipefail
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "with_postgres: PostgreSQL server not found; PostgreSQL tests will be skipped" >&2
  exec "$@"
fi
dir=$(mktemp -d /tmp/vitrine-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off ${VITRINE_PG_OPTS:-}" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
cleanup() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
"$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres vitrine_test
export VITRINE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/vitrine_test"
echo "with_postgres: $VITRINE_TEST_PG_URL" >&2
"$@"
