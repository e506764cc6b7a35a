#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Services the tests need are
# started here by the project's own scripts (idempotent); pytest's "no tests ran"
# (exit code 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false DAGSTER_DISABLE_TELEMETRY=1

# The suite runs with an empty home and cache folder, so nothing a developer's machine
# happens to hold (a cache under ~/.cache, a config file) can stand in for a set-up step.
# pip's download cache may be shared: it only saves downloads.
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
run_home=$(mktemp -d -t eval-pipeline-test-home.XXXXXX)
trap 'rm -rf "$run_home"' EXIT
mkdir -p "$run_home/home" "$run_home/cache"
export HOME="$run_home/home" XDG_CACHE_HOME="$run_home/cache"

# Lint first (ruff check, ruff format --check, mypy on eval_pipeline/: the same script
# `make lint` runs); a problem fails the run before any service starts.
# EVAL_SKIP_LINT=1 skips it (a developer re-running a few tests).
if [ "${EVAL_SKIP_LINT:-0}" != 1 ]; then
  PY="$PY" bash scripts/lint.sh || { echo "test.sh: lint failed (ruff or mypy, above)" >&2; exit 1; }
fi

# What `make run` needs (the same script `make run` calls).
bash scripts/setup-run.sh || { echo "test.sh: could not set up what the default run needs" >&2; exit 1; }

# The single-node SLURM cluster the `slurm` tests submit to: installed and started when
# missing, a fraction of a second when it is already up. It needs root (apt, daemons).
if [ "${EVAL_SKIP_SLURM_START:-0}" != 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/slurm/start-slurm.sh || { echo "test.sh: could not start SLURM" >&2; exit 1; }
  elif sudo -n true 2>/dev/null; then
    sudo -E bash scripts/slurm/start-slurm.sh || { echo "test.sh: could not start SLURM" >&2; exit 1; }
  else
    echo "test.sh: not root and no passwordless sudo: the slurm tests will fail" >&2
  fi
fi

# PostgreSQL for the production-instance tests, Chromium for the browser test, Prometheus
# for the metrics test. With the
# services started here, their tests fail (rather than skip) when a service is missing.
bash scripts/postgres.sh || { echo "test.sh: could not start PostgreSQL" >&2; exit 1; }
bash scripts/ensure-chromium.sh || { echo "test.sh: could not install Chromium" >&2; exit 1; }
bash scripts/ensure-prometheus.sh || { echo "test.sh: could not install Prometheus" >&2; exit 1; }
export EVAL_PIPELINE_REQUIRE_SERVICES=1

"$PY" -m pytest -q -p no:cacheprovider --durations=40 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$rc"
