#!/usr/bin/env bash
# The CI regression gate: run ci_suite_job (or $CI_JOB) for each partition with `dagster job execute`,
# write a Markdown summary (to $GITHUB_STEP_SUMMARY when set, else stdout), and fail when a
# run failed, an aggregates_regression check failed, or `eval-pipeline compare` finds a
# regression against the pinned baseline.
#   CI_JOB          the job to run (default ci_suite_job; the nightly runs regression_suite_job)
#   CI_PARTITIONS   space-separated dataset|model keys (default: every dataset x CI_MODEL)
#   CI_MODEL        model slug for the default partitions (default smollm2-135m)
#   EVAL_PIPELINE_BASELINE  the pinned baseline under baselines/ (default main)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
SUMMARY=${GITHUB_STEP_SUMMARY:-/dev/stdout}

if [ -z "${CI_PARTITIONS:-}" ]; then
  model=${CI_MODEL:-smollm2-135m}
  CI_PARTITIONS=$("$BIN/python" -c "
from eval_pipeline.catalog import load_catalog
from eval_pipeline.resources import default_project_root
print(' '.join(f'{d}|$model' for d in load_catalog(default_project_root(), load_rows=False).dataset_names))")
fi

batch="ci-$(date +%s)-$$"
# The per-partition jobs run every step in the run's own process (defs/jobs.py): no
# per-step subprocess start-up, which dominates a few-sample run on a small runner.
failed=0
for key in $CI_PARTITIONS; do
  dataset=${key%%|*}
  model=${key#*|}
  tags=$(printf '{"dagster/partition": "%s", "dagster/partition/dataset": "%s", "dagster/partition/model": "%s", "eval_pipeline/ci_batch": "%s"}' \
    "$key" "$dataset" "$model" "$batch")
  echo "ci_suite.sh: $key" >&2
  "$BIN/dagster" job execute -m eval_pipeline.definitions -j "${CI_JOB:-ci_suite_job}" \
    --tags "$tags" >&2 || failed=1
done

"$BIN/python" scripts/ci_summary.py --batch "$batch" >> "$SUMMARY" || failed=1

# The paired comparison against the pinned baseline (exit 1 on a regression).
read -r ROOT STORE < <("$BIN/python" -c "
from eval_pipeline.resources import default_project_root, default_store_root
r = default_project_root(); print(r, default_store_root(r))")
BASELINE=${EVAL_PIPELINE_BASELINE:-main}
if [ -f "$ROOT/baselines/$BASELINE/baseline.json" ]; then
  out=$("$BIN/eval-pipeline" compare "baseline:$BASELINE" "$STORE" 2>&1)
  rc=$?
  { echo; echo "### eval-pipeline compare baseline:$BASELINE"; echo;
    echo '```'; echo "$out"; echo '```'; } >> "$SUMMARY"
  [ "$rc" -eq 0 ] || failed=1
else
  { echo; echo "No baseline \`$BASELINE\` is pinned under baselines/: the gate is the checks only."; } >> "$SUMMARY"
fi
exit "$failed"
