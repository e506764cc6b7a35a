"""Asset jobs."""

from __future__ import annotations

import dagster as dg

# A few samples per dataset: fast enough for every pull request.
CI_SAMPLE_LIMIT = 5
# A run tag read by `generations` when its config sets no sample limit. A tag (unlike a
# job's default config) survives every way of launching: `dagster job execute` without
# -c, the UI's launchpad, schedules and sensors.
SAMPLE_LIMIT_TAG = "eval_pipeline/sample_limit"
# The run's spend budget in US dollars (when the generations config sets none), and the
# scope that shares it: runs with the same scope (one CLI invocation) share one budget;
# without the tag a run's budget is its own.
BUDGET_TAG = "eval_pipeline/budget_usd"
BUDGET_SCOPE_TAG = "eval_pipeline/budget_scope"


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    # The calibration assets stay out: ``scores`` calibrates what its partitions' judge
    # metrics use as it runs, so a partition without judge metrics never loads a judge.
    everything = dg.AssetSelection.all() - dg.AssetSelection.groups("judging")
    evaluation_job = dg.define_asset_job(
        "evaluation_job",
        selection=everything,
        description=(
            "The whole graph for one model x dataset partition: prompt versions, samples, "
            "generations, scores, aggregates and the leaderboard, with their checks."
        ),
    )
    ci_suite_job = dg.define_asset_job(
        "ci_suite_job",
        selection=everything,
        description=f"The whole graph on the first {CI_SAMPLE_LIMIT} samples of a partition.",
        tags={SAMPLE_LIMIT_TAG: str(CI_SAMPLE_LIMIT)},
    )
    regression_suite_job = dg.define_asset_job(
        "regression_suite_job",
        selection=everything,
        description=(
            "The whole graph on every sample of a partition, with its checks (the regression "
            "check against the pinned baseline included). Requested by the nightly schedule "
            "and the catalog sensor, which tag each run with the inputs it evaluated."
        ),
    )
    return [evaluation_job, ci_suite_job, regression_suite_job]
