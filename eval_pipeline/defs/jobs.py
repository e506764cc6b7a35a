"""Asset jobs."""

from __future__ import annotations

import dagster as dg

# A few samples per dataset: fast enough for every pull request.
CI_SAMPLE_LIMIT = 5


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    everything = dg.AssetSelection.all(include_sources=False)
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
        config={"ops": {"generations": {"config": {"sample_limit": CI_SAMPLE_LIMIT}}}},
    )
    return [evaluation_job, ci_suite_job]
