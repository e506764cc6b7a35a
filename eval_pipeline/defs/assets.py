"""The evaluation assets. Each body reads its partition, calls one stage, returns metadata."""


import dagster as dg

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.resources import CatalogResource, StoreResource

KINDS = {"polars", "parquet"}


class GenerationConfig(dg.Config):
    """Run configuration of the ``generations`` asset."""

    sample_limit: int | None = None
    """Evaluate only the first N samples of each dataset (None: all)."""
    use_cache: bool = True
    """False sends every request again, ignoring cached responses."""


def build_assets(grid: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The asset graph over the model x dataset ``grid``."""

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS)
    def prompt_versions(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """The prompt template each dataset renders, with its content-hash version.

        Stored once per dataset (``prompt_versions/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        key = _one(context)
        report = stages.build_prompt_versions(catalog.load(), store.get(), key.dataset)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                "prompt_version": report.version,
            }
        )

    @dg.asset(partitions_def=grid, group_name="catalog", kinds=KINDS)
    def dataset_samples(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """The dataset's normalized rows (fields, target, tags, row hash) and its version.

        Stored once per dataset (``dataset_samples/dataset=<d>/``); every model's partition
        of a dataset shares it.
        """
        key = _one(context)
        report = stages.build_dataset_samples(catalog.load(), store.get(), key.dataset)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                "dataset_version": report.version,
            }
        )

    @dg.asset(
        partitions_def=grid,
        deps=[prompt_versions, dataset_samples],
        group_name="evaluation",
        kinds=KINDS,
    )
    def generations(
        context: dg.AssetExecutionContext,
        config: GenerationConfig,
        catalog: CatalogResource,
        store: StoreResource,
    ) -> dg.MaterializeResult:
        """One completion per sample with tokens, latency, cost, errors and provenance.

        Requests already answered (same model, sampling parameters and rendered messages)
        are reused from the response cache instead of calling the model again.
        """
        key = _one(context)
        cat = catalog.load()
        report = stages.generate(
            cat,
            store.get(),
            key.model,
            key.dataset,
            sample_limit=config.sample_limit,
            use_cache=config.use_cache,
            progress=lambda p: context.log.info(f"{key.key}: {p.message()}"),
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                "prompt_version": report.prompt_version,
                "dataset_version": report.dataset_version,
                "new_rows": report.new_rows,
                "reused_rows": report.reused_rows,
                "errors": report.errors,
                "model_calls": report.stats.model_calls,
                "output_tokens": report.stats.output_tokens,
                "cost_usd": round(report.stats.cost_usd, 6),
                "wall_s": round(report.stats.wall_s, 3),
            }
        )

    @dg.asset(partitions_def=grid, deps=[generations], group_name="evaluation", kinds=KINDS)
    def scores(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """One row per sample x metric from the dataset's scorers (null: not applicable)."""
        key = _one(context)
        report = stages.score(catalog.load(), store.get(), key.model, key.dataset)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows,
                "path": dg.MetadataValue.path(str(report.path)),
                **{f"mean/{m}": v for m, v in report.means.items() if v is not None},
            }
        )

    @dg.asset(partitions_def=grid, deps=[scores], group_name="evaluation", kinds=KINDS)
    def aggregates(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """Per metric: n, mean, stderr, seeded bootstrap 95% CI, pass@1 for code; plus
        tokens, cost, latency p50/p95, cache hit rate and error count."""
        key = _one(context)
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
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(deps=[aggregates], group_name="reporting", kinds=KINDS)
    def leaderboard(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        """Every model x dataset's primary metric with its CI, in one table."""
        board = stages.build_leaderboard(catalog.load(), store.get())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": board.height,
                "path": dg.MetadataValue.path(str(store.get().path("leaderboard"))),
                "leaderboard": dg.MetadataValue.md(stages.leaderboard_markdown(board)),
            }
        )

    return [prompt_versions, dataset_samples, generations, scores, aggregates, leaderboard]


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
