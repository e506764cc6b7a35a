"""The evaluation assets. Each body reads its partition, calls one stage, returns metadata."""

from collections.abc import Callable, Sequence

import dagster as dg

from eval_pipeline import stages
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.datasets import build_dataset_assets, refresh_dataset_tables
from eval_pipeline.defs.dispatch import (
    Metadata,
    collect,
    materialize_each,
    report_partitions,
    require_models,
    require_preflight,
    run_tasks,
    runners_for,
)
from eval_pipeline.defs.holds import held_cells, hold_metadata
from eval_pipeline.defs.jobs import (
    BATCH_FALLBACK_TAG,
    BATCH_WAIT_TAG,
    BUDGET_SCOPE_TAG,
    BUDGET_TAG,
    DATASETS_GROUP,
    REPORTING_GROUP,
    ROUTE_TAG,
    SAMPLE_LIMIT_TAG,
    TRAINING_GROUP,
)
from eval_pipeline.defs.judge import judging_failures, log_calibrations
from eval_pipeline.defs.partitions import BY_DATASET, current_partitions, dataset_partitions
from eval_pipeline.defs.versions import (
    GENERATION_SOURCES,
    JUDGE_SOURCES,
    SCORE_SOURCES,
    SOURCES,
    version_deps,
)
from eval_pipeline.model_task import WorkResult, generation_tasks, judging_tasks
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.alerts import AlertsResource
from eval_pipeline.resources.slurm import SlurmResource
from eval_pipeline.runners import TaskOutcome

KINDS = {"polars", "parquet"}
# The version of each asset's own computation (Dagster's ``code_version``): raise it when
# the code that writes the asset changes what it writes, and every partition turns stale.
# What one partition reads (a prompt, a model's revision, a dataset's scorers, a rubric)
# is versioned per partition by the ``versions/*`` assets instead (defs/versions.py).
CODE_VERSIONS = {
    "generations": "1",
    "judgements": "1",
    "scores": "1",
    "aggregates": "1",
    "leaderboard": "1",
}
# Concurrency pools (dagster.yaml ``concurrency.pools``): steps that call models, and steps
# that score (judges included). A pool holds one asset's steps whatever their partition.
GENERATION_POOL = "eval_generation"
SCORING_POOL = "eval_scoring"
# A backfill of grid partitions runs as one run whose steps see every partition at once:
# `generations` can then give each SLURM job all the datasets of one model (one model
# load) and submit the models as a job array. See docs/slurm.md.
SINGLE_RUN = dg.BackfillPolicy.single_run()
# Rows of a whole-grid table shown in asset metadata; the file holds them all. The
# instance keeps every materialization's metadata, so 10,000 rows (800 KB of Markdown)
# per run would grow it by that much each time.
METADATA_ROWS = 100


class GenerationConfig(dg.Config):
    """Run configuration of the ``generations`` asset."""

    sample_limit: int | None = None
    """Evaluate only the first N samples of each dataset (None: the run's
    ``eval_pipeline/sample_limit`` tag if set, else all)."""
    use_cache: bool = True
    """False sends every request again, ignoring cached responses."""
    preflight: bool = True
    """False skips the preflight (data sources, sandbox, API keys, provider packages,
    judges) that otherwise fails the step before any generation when something is missing."""
    budget_usd: float | None = None
    """API models: stop sending once the next request could take this run's new spend past
    this many US dollars, over every partition, judge and SLURM job of the run (cached rows
    cost nothing). None: the run's ``eval_pipeline/budget_usd`` tag if set, else no budget."""
    partition_timeout_s: float | None = None
    """API models: wall-clock cap of a partition's generation; rows not answered by then
    are recorded as not attempted and the step fails. None: no cap."""
    request_timeout_s: float | None = None
    """API models: per-request deadline, overriding the catalog's ``request_timeout_s``."""
    progress_every_s: float = 10.0
    """Seconds between progress lines in the run log."""
    slurm_array_parallelism: int | None = None
    """SLURM models: at most this many of the run's jobs at once (None: the profile's cap)."""


def build_assets(
    grid: dg.MultiPartitionsDefinition,
    judge_deps: Sequence[dg.AssetKey] = (),
    generation_deps: Sequence[dg.AssetDep] = (),
) -> list[dg.AssetsDefinition]:
    """The asset graph over the model x dataset ``grid``.

    ``generation_deps`` are further upstreams of ``generations`` (the fine-tuned
    adapters its adapter models load, see defs/adapters.py).

    ``judge_deps`` are the judge calibrations that ``judgements`` applies, shown as its
    upstreams for lineage; its judge tasks calibrate what their rubrics need as they run,
    so the per-partition jobs leave the calibration assets out.
    """
    prompt_versions, dataset_samples = build_dataset_assets(dataset_partitions(grid))
    generations = generations_asset(
        grid,
        [
            dg.AssetDep(prompt_versions, partition_mapping=BY_DATASET),
            dg.AssetDep(dataset_samples, partition_mapping=BY_DATASET),
            *version_deps(GENERATION_SOURCES),
            *generation_deps,
        ],
    )
    judgements = judgements_asset(
        grid, [generations.key, *judge_deps, *version_deps(JUDGE_SOURCES)]
    )
    scores = scores_asset(grid, [generations.key, judgements.key, *version_deps(SCORE_SOURCES)])
    aggregates = aggregates_asset(grid, scores)
    return [
        prompt_versions,
        dataset_samples,
        generations,
        judgements,
        scores,
        aggregates,
        leaderboard_asset(aggregates),
    ]


def _grid_asset(
    grid: dg.MultiPartitionsDefinition,
    deps: Sequence[dg.AssetDep | dg.AssetKey],
    name: str,
    pool: str,
) -> Callable[[Callable[..., None]], dg.AssetsDefinition]:
    """The decorator of an evaluation asset over ``grid``: its code version, automation and pool."""
    return dg.asset(
        partitions_def=grid,
        deps=deps,
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
        code_version=CODE_VERSIONS[name],
        automation_condition=evaluation_condition(),
        pool=pool,
    )


def generations_asset(
    grid: dg.MultiPartitionsDefinition, deps: Sequence[dg.AssetDep | dg.AssetKey]
) -> dg.AssetsDefinition:
    """``generations`` over ``grid``, reading ``deps``."""

    @_grid_asset(grid, deps, "generations", GENERATION_POOL)
    def generations(
        context: dg.AssetExecutionContext,
        config: GenerationConfig,
        catalog: CatalogResource,
        store: StoreResource,
        slurm: SlurmResource,
    ) -> None:
        """One completion per sample with tokens, latency, cost, errors and provenance.

        Requests already answered (same model, sampling parameters and rendered messages)
        are reused from the response cache instead of calling the model again. Models
        whose catalog entry says ``runs_on: slurm`` are generated by one SLURM job per
        model (all its datasets in this run, one model load), submitted as job arrays.

        First the preflight: a partition whose data source, sandbox, API key, provider
        packages or judges are missing on this machine fails the step before anything is
        written (one line per problem, with its fix). Then it writes ``prompt_versions``
        and ``dataset_samples`` for the datasets of its partitions, recording a
        materialization of a dataset's partition when its version changed.
        """
        cat, st = catalog.load(), store.get()
        keys = current_partitions(context)
        require_models(cat, keys)
        if config.preflight:
            require_preflight(cat, keys, slurm_cluster=slurm.cluster)
        refresh_dataset_tables(context, cat, st, (key.dataset for key in keys))
        tasks = generation_tasks(
            cat,
            st,
            keys,
            sample_limit=_sample_limit(context, config),
            use_cache=config.use_cache,
            **run_budget(context),
            partition_timeout_s=config.partition_timeout_s,
            request_timeout_s=config.request_timeout_s,
            progress_every_s=config.progress_every_s,
            run_id=context.run.run_id,
            route=context.run.tags.get(ROUTE_TAG),
            batch_wait=context.run.tags.get(BATCH_WAIT_TAG) != "sensor",
            batch_fallback_online=context.run.tags.get(BATCH_FALLBACK_TAG) == "online",
        )
        runners = runners_for(
            slurm.runner(cat, st, array_parallelism=config.slurm_array_parallelism)
        )
        outcomes = run_tasks(context, cat, runners, tasks)
        report_partitions(
            context,
            *collect(context, outcomes, lambda task, work: f"{work.dataset}|{task.model}"),
        )

    return generations


def judgements_asset(
    grid: dg.MultiPartitionsDefinition, deps: Sequence[dg.AssetDep | dg.AssetKey]
) -> dg.AssetsDefinition:
    """``judgements`` over ``grid``, reading ``deps`` (``generations`` first)."""

    @dg.asset(
        partitions_def=grid,
        deps=deps,
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
        code_version=CODE_VERSIONS["judgements"],
        automation_condition=evaluation_condition(),
        pool=SCORING_POOL,
    )
    def judgements(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        slurm: SlurmResource,
    ) -> None:
        """The judges' verdicts: one row per sample x judge metric x judge.

        One judge task per judge model the partitions' datasets use: it calibrates its
        rubrics, then rates the completions and writes its rows here, where its catalog
        entry says it runs (inline, or a SLURM job). Each row keeps the judge request's
        hash, the judge and its revision, the rubric version, the raw reply, the parsed
        score, tokens and cost. Partitions without judge metrics load no judge.
        """
        cat, st = catalog.load(), store.get().with_run(context.run.run_id)
        keys = current_partitions(context)
        judging = judging_tasks(cat, st, keys, **run_budget(context))
        failures: dict[str, str] = {}
        judged: dict[str, int] = {}
        calls: dict[str, int] = {}
        if judging:
            outcomes = run_tasks(context, cat, runners_for(slurm.runner(cat, st)), judging)
            log_calibrations(context, cat, st, outcomes)
            failures = judging_failures(context, outcomes)
            judged = judged_rows(outcomes)
            calls = judge_calls(outcomes)

        def build(key: PartitionKey) -> Metadata:
            return {
                "dagster/row_count": judged.get(key.key, 0),
                "judge_calls": calls.get(key.key, 0),
                "judge_tasks": len(judging),
            }

        materialize_each(
            context, build, keys=[k for k in keys if k.key not in failures], failures=failures
        )

    return judgements


def scores_asset(
    grid: dg.MultiPartitionsDefinition, deps: Sequence[dg.AssetDep | dg.AssetKey]
) -> dg.AssetsDefinition:
    """``scores`` over ``grid``, reading ``deps`` (``generations`` first)."""

    @_grid_asset(grid, deps, "scores", SCORING_POOL)
    def scores(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
    ) -> None:
        """One row per sample x metric from the dataset's scorers (null: not applicable).

        Judge metrics read the ``judgements`` rows of the partition, as the other scorers
        read ``generations``: no judge model is called or loaded here, and a missing
        verdict fails the partition naming the judge task to run.
        """
        cat, st = catalog.load(), store.get().with_run(context.run.run_id)

        def build(key: PartitionKey) -> Metadata:
            report = stages.score(cat, st, key.model, key.dataset)
            return {
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                **{f"mean/{m}": v for m, v in report.means.items() if v is not None},
            }

        materialize_each(context, build)

    return scores


def aggregates_asset(
    grid: dg.MultiPartitionsDefinition, scores: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    """``aggregates`` over ``grid``, reading ``scores``."""

    @dg.asset(
        partitions_def=grid,
        deps=[scores],
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
        code_version=CODE_VERSIONS["aggregates"],
        automation_condition=evaluation_condition(),
    )
    def aggregates(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """Per metric: n, mean, stderr, seeded bootstrap 95% CI and pass@1 for code.

        Per partition also tokens, cost, latency p50/p95, cache hit rate and error count.
        """
        materialize_each(
            context, lambda key: aggregate_metadata(catalog, store, key, context.run.run_id)
        )

    return aggregates


def aggregate_metadata(
    catalog: CatalogResource, store: StoreResource, key: PartitionKey, run_id: str
) -> Metadata:
    """The metadata of one ``aggregates`` partition's materialization."""
    st = store.get().with_run(run_id)
    report = stages.aggregate(catalog.load(), st, key.model, key.dataset)
    frame = report.frame
    first = frame.row(0, named=True)
    metadata: Metadata = {
        "dagster/row_count": frame.height,
        "path": dg.MetadataValue.path(str(report.path)),
        "prompt_version": first["prompt_version"],
        "samples": first["samples"],
        "error_count": first["error_count"],
        "output_tokens": first["output_tokens"],
        "cost_usd": first["cost_usd"],
        "latency_p50_s": first["latency_p50_s"] or 0.0,
        "latency_p95_s": first["latency_p95_s"] or 0.0,
        "cache_hit_rate": first["cache_hit_rate"] or 0.0,
    }
    # How the latest generation step ran (numeric: the UI plots them over runs).
    for name in ("model_load_s", "tokens_per_s", "peak_rss_gb", "gpu_peak_mem_gb"):
        if first[name] is not None:
            metadata[f"telemetry/{name}"] = first[name]
    for row in frame.iter_rows(named=True):
        if row["mean"] is not None:
            # Numeric metadata: the UI plots each metric over materializations.
            metadata[f"{row['metric']}/mean"] = row["mean"]
            metadata[f"{row['metric']}/ci_low"] = row["ci_low"]
            metadata[f"{row['metric']}/ci_high"] = row["ci_high"]
    return metadata


def leaderboard_asset(aggregates: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """``leaderboard``: every partition of ``aggregates`` in one table (unpartitioned)."""

    @dg.asset(
        deps=[aggregates],
        group_name=REPORTING_GROUP,
        kinds=KINDS,
        code_version=CODE_VERSIONS["leaderboard"],
    )
    def leaderboard(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        alerts: AlertsResource,
    ) -> dg.MaterializeResult:
        """Every model x dataset's primary metric with its CI, in one table.

        Materialized by ``reporting_job`` (after a backfill, after the nightly suite, or on
        demand), not by the per-partition jobs. A cell whose latest
        ``aggregates_regression`` verdict failed is held: it shows the numbers it last
        passed with (``held`` true), or no row if it never passed, until a passing verdict
        releases it. The metadata shows the first rows and the held cells (``held``,
        ``held_cells``); ``path`` is the whole table.
        """
        cat, st = catalog.load(), store.get()
        holds = held_cells(context.instance, alerts.ui_base_url)
        board = stages.build_leaderboard(cat, st, holds)
        report = stages.write_leaderboard_report(cat, st, board, holds)
        markdown = stages.leaderboard_markdown(board, max_rows=METADATA_ROWS)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": board.height,
                "path": dg.MetadataValue.path(str(st.path("leaderboard"))),
                "leaderboard": dg.MetadataValue.md(markdown),
                **hold_metadata(st, holds),
                # The HTML report with its PNG plots (score with CIs, cost, latency).
                "report": dg.MetadataValue.path(str(report)),
                "report_url": dg.MetadataValue.url(report.as_uri()),
            }
        )

    return leaderboard


def evaluation_condition() -> dg.AutomationCondition:
    """When the automation sensor requests a grid partition of an evaluation asset.

    Dagster's ``eager()`` narrowed to what this graph needs: a partition is requested when
    a partition it reads was updated since the last tick (a ``versions/*`` partition whose
    version changed, or the partition upstream in the same cell), unless something it reads
    is missing or in progress, or it is in progress itself. Updates of the per-dataset
    tables, calibrations and adapters are left out: the runs that read them write them,
    and ``catalog_sensor`` and ``adapter_sensor`` request new and retrained cells.
    A ``versions/*`` partition never recorded does not count as missing: it is recorded
    only when it changes (see defs/versions.py). New partitions (``newly_missing``) are
    ``catalog_sensor``'s, which must reload the code location first.
    """
    quiet = dg.AssetSelection.groups(DATASETS_GROUP, "judging", TRAINING_GROUP)
    # Dagster evaluates these in order, each reading the instance as it is then, while runs
    # go on writing. "In progress" comes first: a cell whose run writes it after that read
    # was in progress; one written before it is, by the time "updated" is read, newly
    # updated, which resets the trigger. Read the other way round, a cell written between
    # the two reads looked neither, and was requested again after its run.
    return (
        ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & dg.AutomationCondition.any_deps_updated().ignore(quiet).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(
            quiet | dg.AssetSelection.assets(*(s.key for s in SOURCES))
        )
    ).with_label("eager_on_versions")


def judge_calls(outcomes: Sequence[TaskOutcome]) -> dict[str, int]:
    """Judge requests sent per partition (``dataset|model``) by the judging tasks."""
    return _per_judged_partition(outcomes, lambda result: result.stats.model_calls)


def judged_rows(outcomes: Sequence[TaskOutcome]) -> dict[str, int]:
    """Judgement rows written per partition (``dataset|model``) by the judging tasks."""
    return _per_judged_partition(outcomes, lambda result: result.rows)


def _per_judged_partition(
    outcomes: Sequence[TaskOutcome], count: Callable[[WorkResult], int]
) -> dict[str, int]:
    """``count`` of each judging work result, summed per judged partition (``dataset|model``)."""
    totals: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.result is None:
            continue
        for result in outcome.result.results:
            work = result.work
            if work.kind == "judge":
                key = f"{work.dataset}|{work.judged_model}"
                totals[key] = totals.get(key, 0) + count(result)
    return totals


def run_budget(context: dg.AssetExecutionContext) -> dict[str, object]:
    """The run's budget and the scope sharing it, for every task of the run.

    The ``generations`` config's ``budget_usd`` (read from the run config, so the judging
    in ``scores`` honours it too), else the run's budget tag; the scope is the budget-scope
    tag (one CLI invocation) or the run id.
    """
    ops = context.run.run_config.get("ops")
    op_config = ops.get("generations") if isinstance(ops, dict) else None
    config = op_config.get("config") if isinstance(op_config, dict) else None
    budget = config.get("budget_usd") if isinstance(config, dict) else None
    if budget is None and context.run.tags.get(BUDGET_TAG):
        budget = float(context.run.tags[BUDGET_TAG])
    if budget is None:
        return {}
    scope = context.run.tags.get(BUDGET_SCOPE_TAG) or context.run.run_id
    return {"budget_usd": float(budget), "budget_scope": scope}


def _sample_limit(context: dg.AssetExecutionContext, config: GenerationConfig) -> int | None:
    if config.sample_limit is not None:
        return config.sample_limit
    tag = context.run.tags.get(SAMPLE_LIMIT_TAG)
    return int(tag) if tag else None
