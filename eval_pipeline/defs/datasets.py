"""The per-dataset assets: one partition per dataset, refreshed by the grid's runs.

``prompt_versions`` and ``dataset_samples`` hold one file per dataset, which every model's
partition of that dataset reads. They are partitioned by dataset, and ``generations``
depends on them through :data:`~eval_pipeline.defs.partitions.BY_DATASET`, so the asset
graph shows each grid partition ``<dataset>|<model>`` reading its dataset's partition.

Dagster runs one job over assets of one partitioning, so the per-partition jobs (grid
keys) cannot select these assets. Instead the ``generations`` step writes the tables of
its partitions' datasets before it generates (:func:`refresh_dataset_tables`) and records
a materialization of a dataset's partition only when its version differs from the latest
one recorded: a first run of a dataset records one per asset, however many models the
run covers, and later runs of unchanged data record none. They can still be materialized
on their own (``datasets_job``, or the UI).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog
from eval_pipeline.defs.dispatch import Metadata
from eval_pipeline.defs.jobs import DATASETS_GROUP
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.stages.catalog_tables import TableReport
from eval_pipeline.storage import Store

KINDS = {"polars", "parquet"}


@dataclass(frozen=True)
class DatasetTable:
    """A per-dataset table: its asset, the stage that writes it, its version's name."""

    asset: str
    build: Callable[[Catalog, Store, str], TableReport]
    version: str
    description: str
    """The asset's description in the UI."""


_SHARED = (
    "\n\nOne file per dataset (``{}/dataset=<d>/``), shared by every model's partition of "
    "the dataset. ``generations`` rewrites it for the datasets it runs and records a "
    "materialization here when the {} changed."
)
TABLES = (
    DatasetTable(
        "prompt_versions",
        stages.build_prompt_versions,
        "prompt_version",
        "The prompt template each dataset renders, with its content-hash version."
        + _SHARED.format("prompt_versions", "prompt version"),
    ),
    DatasetTable(
        "dataset_samples",
        stages.build_dataset_samples,
        "dataset_version",
        "The dataset's normalized rows (fields, target, tags, row hash) and its version."
        + _SHARED.format("dataset_samples", "dataset version"),
    ),
)


def build_dataset_assets(datasets: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """``prompt_versions`` and ``dataset_samples``, partitioned by ``datasets``."""
    return [table_asset(table, datasets, DATASETS_GROUP) for table in TABLES]


def table_asset(
    table: DatasetTable, partitions: dg.PartitionsDefinition, group: str
) -> dg.AssetsDefinition:
    """The asset of a per-dataset ``table``: writes it for each dataset partition of the step."""

    @dg.asset(
        name=table.asset,
        description=table.description,
        partitions_def=partitions,
        group_name=group,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _table(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        cat, st = catalog.load(), store.get()
        for dataset in context.partition_keys:
            report = table.build(cat, st, dataset)
            context.add_asset_metadata(_metadata(table, report), partition_key=dataset)

    return _table


def refresh_dataset_tables(
    context: dg.AssetExecutionContext,
    catalog: Catalog,
    store: Store,
    datasets: Iterable[str],
    tables: Sequence[DatasetTable] = TABLES,
) -> None:
    """Write the per-dataset ``tables`` of ``datasets``; record those whose version changed.

    Each table is written whatever the instance says (a few milliseconds, and the store
    may have been moved or wiped). A materialization of the dataset's partition is
    logged only when the version differs from the latest recorded one, or none is
    recorded: two instance queries per dataset, instead of one materialization per
    model x dataset.
    """
    for dataset in sorted(set(datasets)):
        for table in tables:
            report = table.build(catalog, store, dataset)
            key = dg.AssetKey(table.asset)
            recorded = recorded_version(context.instance, key, dataset, table.version)
            if recorded == report.version:
                continue
            context.log.info(
                f"{table.asset} {dataset}: {table.version} {recorded or 'none'} -> {report.version}"
            )
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=key, partition=dataset, metadata=_metadata(table, report)
                )
            )


def recorded_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, dataset: str, name: str
) -> str | None:
    """The version named ``name`` in the latest materialization of ``key``'s ``dataset``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[dataset]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(name)
    return None if value is None else str(value.value)


def _metadata(table: DatasetTable, report: TableReport) -> Metadata:
    return {
        "dagster/row_count": report.rows,
        "path": dg.MetadataValue.path(str(report.path)),
        table.version: report.version,
    }
