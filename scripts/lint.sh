#!/usr/bin/env bash
# The lint step of `make lint` and of scripts/test.sh (so CI runs it too): ruff's checks,
# ruff's format check, and mypy on eval_pipeline/ with [tool.mypy] of pyproject.toml.
# Every step runs, and the script fails if any of them found a problem.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
failed=0
"$PY" -m ruff check eval_pipeline eval_pipeline_tests scripts || failed=1
"$PY" -m ruff format --check eval_pipeline eval_pipeline_tests scripts || failed=1
"$PY" -m mypy || failed=1
if [ "$failed" -ne 0 ]; then
  echo "lint.sh: ruff or mypy found problems (above)" >&2
  exit 1
fi
