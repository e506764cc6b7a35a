#!/usr/bin/env bash
# The CI regression gate: run ci_suite_job (or $CI_JOB) for each partition with `dagster job execute`,
# write a Markdown summary (to $GITHUB_STEP_SUMMARY when set, else stdout), and fail when a
# run failed, an aggregates_regression check failed, or `eval-pipeline compare` finds a
# regression against the pinned baseline. Each partition evaluates as many samples as the
# paired test needs to see the drop to detect (or all the dataset has); when that is too few
# the summary says "inconclusive" and the gate exits 2 instead of passing.
#   CI_JOB          the job to run (default ci_suite_job; the nightly runs regression_suite_job)
#   CI_PARTITIONS   space-separated dataset|model keys (default: every dataset x CI_MODEL)
#   CI_MODEL        model slug for the default partitions (default smollm2-135m)
#   CI_SAMPLES      a fixed sample count per partition instead of the planned one
#   EVAL_PIPELINE_CI_DROP   the drop to detect, as a share (default 0.10)
#   EVAL_PIPELINE_CI_CHURN  the share of samples that flip either way between unchanged runs (default 0.05)
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

# Samples per dataset: enough to see the drop with power 0.8, or every sample there is.
declare -A SAMPLES
while read -r dataset n; do SAMPLES[$dataset]=$n; done < <("$BIN/python" -c "
import os
from eval_pipeline.catalog import load_catalog
from eval_pipeline.operations import GateSettings
from eval_pipeline.resources import default_project_root
catalog, settings = load_catalog(default_project_root(), load_rows=False), GateSettings.from_env()
fixed = os.environ.get('CI_SAMPLES')
for name in catalog.dataset_names:
    available = len(catalog.dataset(name).rows)
    print(name, int(fixed) if fixed else settings.samples_for(available))")

batch="ci-$(date +%s)-$$"
# The per-partition jobs run every step in the run's own process (defs/jobs.py): no
# per-step subprocess start-up, which dominates a few-sample run on a small runner.
failed=0
inconclusive=0
for key in $CI_PARTITIONS; do
  dataset=${key%%|*}
  model=${key#*|}
  tags=$(printf '{"dagster/partition": "%s", "dagster/partition/dataset": "%s", "dagster/partition/model": "%s", "eval_pipeline/ci_batch": "%s", "eval_pipeline/sample_limit": "%s"}' \
    "$key" "$dataset" "$model" "$batch" "${SAMPLES[$dataset]}")
  echo "ci_suite.sh: $key (${SAMPLES[$dataset]} samples)" >&2
  "$BIN/dagster" job execute -m eval_pipeline.definitions -j "${CI_JOB:-ci_suite_job}" \
    --tags "$tags" >&2 || failed=1
done

"$BIN/python" scripts/ci_summary.py --batch "$batch" >> "$SUMMARY"
case $? in
  0) ;;
  2) inconclusive=1 ;;
  *) failed=1 ;;
esac

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
if [ "$failed" -ne 0 ]; then
  exit 1
fi
# No regression seen, but some partition could not have shown the drop: not a pass.
[ "$inconclusive" -eq 0 ] || exit 2
exit 0
