#!/usr/bin/env bash
# Start the Dagster daemon (schedules, sensors, backfills, run queue) in the background and
# the web UI in the foreground on http://${UI_HOST:-127.0.0.1}:${UI_PORT:-3000}.
# Ctrl-C (or SIGTERM) stops both. The daemon and the webserver are started directly rather
# than through `dagster dev`, which ignores SIGINT/SIGTERM when backgrounded.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
: "${DAGSTER_HOME:?set DAGSTER_HOME (make ui sets it to .dagster_home)}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
# Where the daemon's sensors find the webserver (catalog_sensor reloads it; alerts link to it).
ui_host=${UI_HOST:-127.0.0.1}
[ "$ui_host" = 0.0.0.0 ] && ui_host=127.0.0.1
# Dagster hands a new run's planned partitions to the event log as one batch (the night's
# range runs: 400 rows each), which dagster.yaml's event log writes at once
# (eval_pipeline/defs/event_log.py). Both processes create runs.
export DAGSTER_EVENT_BATCH_SIZE=${DAGSTER_EVENT_BATCH_SIZE:-100000}
export EVAL_PIPELINE_UI_URL=${EVAL_PIPELINE_UI_URL:-http://$ui_host:${UI_PORT:-3000}}
"$BIN/dagster-daemon" run -w workspace.yaml &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT INT TERM
"$BIN/dagster-webserver" -w workspace.yaml -h "${UI_HOST:-127.0.0.1}" -p "${UI_PORT:-3000}"
