#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on loopback, when PostgreSQL is
# installed; its URL is exported as ACCORD_TEST_POSTGRES_URL for the store tests.
# Without PostgreSQL the command runs as is (the tests then fail under CI=true, skip
# otherwise). The server lives in a temporary folder and is stopped afterwards.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "${ACCORD_TEST_POSTGRES_URL:-}" ] || [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  exec "$@"
fi

data=$(mktemp -d /tmp/accord-pg.XXXXXX)
port=${ACCORD_TEST_POSTGRES_PORT:-$(( 20000 + RANDOM % 20000 ))}
as_pg=()
if [ "$(id -u)" = "0" ]; then
  chown postgres "$data"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT
"${as_pg[@]}" "$bin/initdb" -D "$data/db" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-h 127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null
export ACCORD_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL for the tests at 127.0.0.1:$port" >&2
"$@"
