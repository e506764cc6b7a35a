#!/usr/bin/env bash
# Make sure the local PostgreSQL server runs and the test database exists (idempotent).
# Used by scripts/test.sh; prints the connection variables the tests read.
#   PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres) EVAL_PIPELINE_TEST_PG_DB (eval_pipeline_test)
set -euo pipefail
HOST=${PGHOST:-127.0.0.1}
PORT=${PGPORT:-5432}
USER_=${PGUSER:-postgres}
DB=${EVAL_PIPELINE_TEST_PG_DB:-eval_pipeline_test}

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

if ! ready; then
  # A Debian cluster that is installed but stopped (a rebooted development machine).
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    echo "postgres.sh: starting PostgreSQL $version" >&2
    if [ "$(id -u)" -eq 0 ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    else
      sudo -n pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
  fi
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
if ! ready; then
  echo "postgres.sh: no PostgreSQL on $HOST:$PORT (install postgresql, or set PGHOST/PGPORT)" >&2
  exit 1
fi
exists=$(psql -h "$HOST" -p "$PORT" -U "$USER_" -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [ "$exists" != "1" ]; then
  # Two test runs may race to create it; losing the race is fine.
  createdb -h "$HOST" -p "$PORT" -U "$USER_" "$DB" 2>/dev/null || [ "$(psql -h "$HOST" -p "$PORT" \
    -U "$USER_" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" = "1" ]
fi
echo "postgres.sh: PostgreSQL ready on $HOST:$PORT, database $DB" >&2
