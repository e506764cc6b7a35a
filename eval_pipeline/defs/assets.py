"""The evaluation assets. Each body reads its partition, calls one stage, returns metadata."""

from collections.abc import Sequence

import dagster as dg

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog
from eval_pipeline.defs.dispatch import materialize_each, materialize_generations
from eval_pipeline.defs.jobs import SAMPLE_LIMIT_TAG
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.slurm import SlurmResource

KINDS = {"polars", "parquet"}
# A backfill of grid partitions runs as one run whose steps see every partition at once:
# `generations` can then give each SLURM job all the datasets of one model (one model
# load) and submit the models as a job array. See docs/slurm.md.
SINGLE_RUN = dg.BackfillPolicy.single_run()


class GenerationConfig(dg.Config):
    """Run configuration of the ``generations`` asset."""

    sample_limit: int | None = None
    """Evaluate only the first N samples of each dataset (None: the run's
    ``eval_pipeline/sample_limit`` tag if set, else all)."""
    use_cache: bool = True
    """False sends every request again, ignoring cached responses."""
    budget_usd: float | None = None
    """API models: stop sending once the next request could take this run's new spend past
    this many US dollars (cached rows cost nothing). None: no budget."""
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
    grid: dg.MultiPartitionsDefinition, score_deps: Sequence[dg.AssetKey] = ()
) -> list[dg.AssetsDefinition]:
    """The asset graph over the model x dataset ``grid``.

    ``score_deps`` are extra upstreams of ``scores`` (the judge calibrations its judge
    metrics read), so a run materializes them first.
    """

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS, backfill_policy=SINGLE_RUN)
    def prompt_versions(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """The prompt template each dataset renders, with its content-hash version.

        Stored once per dataset (``prompt_versions/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        built: dict[str, dict] = {}

        def build(key) -> dict:
            # Every model's partition of a dataset shares one file: write it once.
            if key.dataset not in built:
                report = stages.build_prompt_versions(catalog.load(), store.get(), key.dataset)
                built[key.dataset] = {
                    "dagster/row_count": report.rows,
                    "path": dg.MetadataValue.path(str(report.path)),
                    "prompt_version": report.version,
                }
            return built[key.dataset]

        materialize_each(context, build)

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS, backfill_policy=SINGLE_RUN)
    def dataset_samples(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """The dataset's normalized rows (fields, target, tags, row hash) and its version.

        Stored once per dataset (``dataset_samples/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        built: dict[str, dict] = {}

        def build(key) -> dict:
            if key.dataset not in built:
                report = stages.build_dataset_samples(catalog.load(), store.get(), key.dataset)
                built[key.dataset] = {
                    "dagster/row_count": report.rows,
                    "path": dg.MetadataValue.path(str(report.path)),
                    "dataset_version": report.version,
                }
            return built[key.dataset]

        materialize_each(context, build)

    @dg.asset(
        partitions_def=grid,
        deps=[prompt_versions, dataset_samples],
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
        sample_limit = _sample_limit(context, config)

        def generate_inline(key):
            return stages.generate(
                catalog.load(),
                store.get(),
                key.model,
                key.dataset,
                sample_limit=sample_limit,
                use_cache=config.use_cache,
                progress=lambda p: context.log.info(f"{key.key}: {p.message()}"),
                progress_every_s=config.progress_every_s,
                budget_usd=config.budget_usd,
                partition_timeout_s=config.partition_timeout_s,
                request_timeout_s=config.request_timeout_s,
            )

        materialize_generations(
            context,
            catalog,
            store,
            slurm,
            sample_limit=sample_limit,
            use_cache=config.use_cache,
            generate_inline=generate_inline,
            array_parallelism=config.slurm_array_parallelism,
        )

    @dg.asset(
        partitions_def=grid,
        deps=[generations, *score_deps],
        group_name="evaluation",
        kinds=KINDS,
        backfill_policy=SINGLE_RUN,
    )
    def scores(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """One row per sample x metric from the dataset's scorers (null: not applicable)."""

        def build(key) -> dict:
            report = stages.score(catalog.load(), store.get(), key.model, key.dataset)
            return {
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                **{f"mean/{m}": v for m, v in report.means.items() if v is not None},
            }

        materialize_each(context, build)

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
        materialize_each(context, lambda key: _aggregate_metadata(catalog, store, key))

    def _aggregate_metadata(catalog: CatalogResource, store: StoreResource, key) -> dict:
        report = stages.aggregate(catalog.load(), store.get(), key.model, key.dataset)
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
        for row in frame.iter_rows(named=True):
            if row["mean"] is not None:
                # Numeric metadata: the UI plots each metric over materializations.
                metadata[f"{row['metric']}/mean"] = row["mean"]
                metadata[f"{row['metric']}/ci_low"] = row["ci_low"]
                metadata[f"{row['metric']}/ci_high"] = row["ci_high"]
        return metadata

    @dg.asset(deps=[aggregates], group_name="reporting", kinds=KINDS)
    def leaderboard(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """Every model x dataset's primary metric with its CI, in one table."""
        cat = catalog.load()
        board = stages.build_leaderboard(cat, store.get())
        report = stages.write_leaderboard_report(cat, store.get(), board)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": board.height,
                "path": dg.MetadataValue.path(str(store.get().path("leaderboard"))),
                "leaderboard": dg.MetadataValue.md(stages.leaderboard_markdown(board)),
                # The HTML report with its PNG plots (score with CIs, cost, latency).
                "report": dg.MetadataValue.path(str(report)),
                "report_url": dg.MetadataValue.url(report.as_uri()),
            }
        )

    return [prompt_versions, dataset_samples, generations, scores, aggregates, leaderboard]


def _sample_limit(context: dg.AssetExecutionContext, config: GenerationConfig) -> int | None:
    if config.sample_limit is not None:
        return config.sample_limit
    tag = context.run.tags.get(SAMPLE_LIMIT_TAG)
    return int(tag) if tag else None


def _one(context: dg.AssetExecutionContext):
    keys = current_partitions(context)
    if len(keys) != 1:
        raise dg.Failure(
            f"this asset runs one partition per run, got {len(keys)}; "
            "launch a multi-run backfill instead of a single-run range"
        )
    return keys[0]


def catalog_partitions(catalog: Catalog) -> list[str]:
    return [f"{d}|{m}" for d in catalog.dataset_names for m in catalog.model_slugs]
