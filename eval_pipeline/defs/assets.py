"""The evaluation assets. Each body reads its partition, calls one stage, returns metadata."""

from collections.abc import Sequence

import dagster as dg

from eval_pipeline import stages
from eval_pipeline.defs.dispatch import (
    collect,
    materialize_each,
    report_partitions,
    require_models,
    run_tasks,
    runners_for,
)
from eval_pipeline.defs.jobs import BUDGET_SCOPE_TAG, BUDGET_TAG, REPORTING_GROUP, SAMPLE_LIMIT_TAG
from eval_pipeline.defs.judge import judging_failures, log_calibrations
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.node import generation_tasks, judging_tasks
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.slurm import SlurmResource

KINDS = {"polars", "parquet"}
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
    score_deps: Sequence[dg.AssetKey] = (),
    generation_deps: Sequence[dg.AssetDep] = (),
) -> list[dg.AssetsDefinition]:
    """The asset graph over the model x dataset ``grid``.

    ``generation_deps`` are further upstreams of ``generations`` (the fine-tuned
    adapters its adapter models load, see defs/adapters.py).

    ``score_deps`` are the judge calibrations that ``scores`` reads, shown as its upstreams
    for lineage; ``scores`` calibrates what its partitions' judge metrics use as it runs,
    so the per-partition jobs leave the calibration assets out.
    """

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS, backfill_policy=SINGLE_RUN)
    def prompt_versions(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """The prompt template each dataset renders, with its content-hash version.

        Stored once per dataset (``prompt_versions/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        _materialize_per_dataset(
            context, catalog, store, stages.build_prompt_versions, "prompt_version"
        )

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS, backfill_policy=SINGLE_RUN)
    def dataset_samples(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """The dataset's normalized rows (fields, target, tags, row hash) and its version.

        Stored once per dataset (``dataset_samples/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        _materialize_per_dataset(
            context, catalog, store, stages.build_dataset_samples, "dataset_version"
        )

    @dg.asset(
        partitions_def=grid,
        deps=[prompt_versions, dataset_samples, *generation_deps],
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
    )
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
        """
        cat, st = catalog.load(), store.get()
        keys = current_partitions(context)
        require_models(cat, keys)
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
        )
        runners = runners_for(
            slurm.runner(cat, st, array_parallelism=config.slurm_array_parallelism)
        )
        outcomes = run_tasks(context, cat, runners, tasks)
        report_partitions(
            context,
            *collect(context, outcomes, lambda task, work: f"{work.dataset}|{task.model}"),
        )

    @dg.asset(
        partitions_def=grid,
        deps=[generations, *score_deps],
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
    )
    def scores(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        slurm: SlurmResource,
    ) -> None:
        """One row per sample x metric from the dataset's scorers (null: not applicable).

        Judge metrics first: each judge model the partitions' datasets use calibrates its
        rubrics and rates the completions, where its catalog entry says it runs (inline or
        a SLURM job); scoring then reads the verdicts from the response cache. Datasets
        without judge metrics load no judge.
        """
        cat, st = catalog.load(), store.get().with_run(context.run.run_id)
        keys = current_partitions(context)
        judging = judging_tasks(cat, st, keys, **run_budget(context))
        failures: dict[str, str] = {}
        if judging:
            outcomes = run_tasks(context, cat, runners_for(slurm.runner(cat, st)), judging)
            log_calibrations(context, cat, st, outcomes)
            failures = judging_failures(context, outcomes)

        def build(key) -> dict:
            report = stages.score(cat, st, key.model, key.dataset)
            return {
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                **{f"mean/{m}": v for m, v in report.means.items() if v is not None},
            }

        materialize_each(
            context, build, keys=[k for k in keys if k.key not in failures], failures=failures
        )

    @dg.asset(
        partitions_def=grid,
        deps=[scores],
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
    )
    def aggregates(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """Per metric: n, mean, stderr, seeded bootstrap 95% CI and pass@1 for code.

        Per partition also tokens, cost, latency p50/p95, cache hit rate and error count.
        """
        materialize_each(
            context, lambda key: _aggregate_metadata(catalog, store, key, context.run.run_id)
        )

    def _aggregate_metadata(
        catalog: CatalogResource, store: StoreResource, key, run_id: str
    ) -> dict:
        st = store.get().with_run(run_id)
        report = stages.aggregate(catalog.load(), st, key.model, key.dataset)
        frame = report.frame
        first = frame.row(0, named=True)
        metadata: dict[str, object] = {
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

    @dg.asset(deps=[aggregates], group_name=REPORTING_GROUP, kinds=KINDS)
    def leaderboard(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """Every model x dataset's primary metric with its CI, in one table.

        Materialized by ``reporting_job`` (after a backfill, after the nightly suite, or on
        demand), not by the per-partition jobs. The metadata shows the first
        rows; ``path`` is the whole table.
        """
        cat = catalog.load()
        board = stages.build_leaderboard(cat, store.get())
        report = stages.write_leaderboard_report(cat, store.get(), board)
        markdown = stages.leaderboard_markdown(board, max_rows=METADATA_ROWS)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": board.height,
                "path": dg.MetadataValue.path(str(store.get().path("leaderboard"))),
                "leaderboard": dg.MetadataValue.md(markdown),
                # The HTML report with its PNG plots (score with CIs, cost, latency).
                "report": dg.MetadataValue.path(str(report)),
                "report_url": dg.MetadataValue.url(report.as_uri()),
            }
        )

    return [prompt_versions, dataset_samples, generations, scores, aggregates, leaderboard]


def _materialize_per_dataset(
    context: dg.AssetExecutionContext,
    catalog: CatalogResource,
    store: StoreResource,
    stage,
    version_name: str,
) -> None:
    """Materialize a per-dataset table for every grid cell the step covers.

    Every model's partition of a dataset shares one file, so each dataset is written once.
    """
    built: dict[str, dict] = {}

    def build(key) -> dict:
        if key.dataset not in built:
            report = stage(catalog.load(), store.get(), key.dataset)
            built[key.dataset] = {
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                version_name: report.version,
            }
        return built[key.dataset]

    materialize_each(context, build)


def run_budget(context: dg.AssetExecutionContext) -> dict[str, object]:
    """The run's budget and the scope sharing it, for every task of the run.

    The ``generations`` config's ``budget_usd`` (read from the run config, so the judging
    in ``scores`` honours it too), else the run's budget tag; the scope is the budget-scope
    tag (one CLI invocation) or the run id.
    """
    op_config = (context.run.run_config.get("ops") or {}).get("generations") or {}
    budget = (op_config.get("config") or {}).get("budget_usd")
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
