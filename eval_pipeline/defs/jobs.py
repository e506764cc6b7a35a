"""Asset jobs, and which executor each one runs under.

The per-partition jobs (``evaluation_job``, ``ci_suite_job``, ``regression_suite_job``)
evaluate one model x dataset partition, or the rectangle of a single-run backfill. Their
steps form a chain (inputs -> generations -> scores -> aggregates, with checks) that
cannot overlap, so they run in the run's own process: the multiprocess executor would
start one Python process per step (8-10 of them) and spend 25-30 s importing before the
first model call, against about 4 s for the whole run in process. Parallelism across
partitions comes from running many runs (the run queue), and within a step from the
engine (async API calls) and SLURM (job arrays).

``prompt_versions`` and ``dataset_samples`` are partitioned by dataset, and a job's assets
share one partitioning, so the per-partition jobs leave them out: their ``generations``
step writes the tables of its datasets and records their materializations when a version
changed (``defs/datasets.py``). ``datasets_job`` materializes them on their own, one
dataset partition (or a backfill's range of them) per run.

``reporting_job`` reads every stored partition; it is kept out of the per-partition jobs
so its cost is paid once after a backfill or a night, not once per partition. Its two
steps (``leaderboard`` with the HTML report, ``regression_report``) are independent and
both read the whole store, so it keeps the multiprocess executor: they run side by side.
"""

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
# ``batch`` or ``online``: the route of every API model of the run, over its catalog route.
ROUTE_TAG = "eval_pipeline/route"
# ``sensor``: the batch route submits and the step ends; ``batch_collect_sensor`` requests
# the run that collects the batches once they end. Otherwise the step waits for them.
BATCH_WAIT_TAG = "eval_pipeline/batch_wait"
# ``online``: what the batches left unanswered after their last round is sent online.
BATCH_FALLBACK_TAG = "eval_pipeline/batch_fallback"

DATASETS_GROUP = "catalog"
DATASETS_JOB = "datasets_job"
REPORTING_GROUP = "reporting"
REPORTING_JOB = "reporting_job"
# The fine-tuning assets (``adapters``, partitioned by recipe) and their job.
TRAINING_GROUP = "training"
TRAINING_JOB = "training_job"
# The external ``versions/*`` assets (defs/versions.py): recorded by versions_sensor,
# never run by a job.
VERSIONS_GROUP = "versions"
# The jobs whose runs materialize grid partitions (the reporting sensor waits for them).
PARTITION_JOBS = ("evaluation_job", "ci_suite_job", "regression_suite_job")


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    # The calibration assets stay out: ``judgements`` calibrates what its partitions' judge
    # metrics use as it runs, so a partition without judge metrics never loads a judge.
    # The reporting assets stay out too: they read every partition (reporting_job). So do
    # the per-dataset assets (another partitioning: `generations` keeps them current) and
    # the fine-tuning assets (training_job, in defs/adapters.py).
    reporting = dg.AssetSelection.groups(REPORTING_GROUP)
    datasets = dg.AssetSelection.groups(DATASETS_GROUP)
    partition = (
        dg.AssetSelection.all()
        - dg.AssetSelection.groups("judging")
        - reporting
        - datasets
        - dg.AssetSelection.groups(TRAINING_GROUP)
        - dg.AssetSelection.groups(VERSIONS_GROUP)
    )
    evaluation_job = dg.define_asset_job(
        "evaluation_job",
        selection=partition,
        executor_def=dg.in_process_executor,
        description=(
            "The whole evaluation of one model x dataset partition: generations (which first "
            "writes the dataset's prompt versions and samples), scores and aggregates, with "
            "their checks. The leaderboard and reports are reporting_job's."
        ),
    )
    ci_suite_job = dg.define_asset_job(
        "ci_suite_job",
        selection=partition,
        executor_def=dg.in_process_executor,
        description=f"The evaluation of a partition on its first {CI_SAMPLE_LIMIT} samples.",
        tags={SAMPLE_LIMIT_TAG: str(CI_SAMPLE_LIMIT)},
    )
    regression_suite_job = dg.define_asset_job(
        "regression_suite_job",
        selection=partition,
        executor_def=dg.in_process_executor,
        description=(
            "The evaluation of a partition on every sample, with its checks (the regression "
            "check against the pinned baseline included). Requested by the nightly schedule "
            "and the catalog sensor, which tag each run with the inputs it evaluated."
        ),
    )
    datasets_job = dg.define_asset_job(
        DATASETS_JOB,
        selection=datasets,
        executor_def=dg.in_process_executor,
        description=(
            "The per-dataset tables (prompt versions, normalized samples) of one dataset "
            "partition. The evaluation jobs keep them current themselves; this job "
            "materializes them without evaluating any model."
        ),
    )
    reporting_job = dg.define_asset_job(
        REPORTING_JOB,
        selection=reporting,
        executor_def=dg.multiprocess_executor,
        description=(
            "The leaderboard (with its HTML report) and the regression report over every "
            "stored partition. Requested by reporting_sensor once evaluation runs have "
            "finished (after a backfill, after the nightly suite), by `eval-pipeline run`, "
            "or on demand."
        ),
    )
    return [evaluation_job, ci_suite_job, regression_suite_job, datasets_job, reporting_job]
