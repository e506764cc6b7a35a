#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Services the tests need are
# started here by the project's own scripts (idempotent); pytest's "no tests ran"
# (exit code 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false DAGSTER_DISABLE_TELEMETRY=1

"$PY" -m pytest -q -p no:cacheprovider --durations=15 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$rc"
