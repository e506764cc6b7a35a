"""The model x dataset partition grid."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey


def grid_partitions(
    catalog: Catalog, adapter_models: Sequence[str] = ()
) -> dg.MultiPartitionsDefinition:
    """The grid: two dimensions, ``model`` and ``dataset``, taken from the catalog.

    ``adapter_models`` are the fine-tuned models ``<base>__<recipe>`` of ``recipes.yaml``:
    model keys too, evaluable once their adapter is trained. Keys read ``dataset|model``
    (Dagster sorts dimension names).
    """
    models = sorted({*catalog.model_slugs, *adapter_models})
    return dg.MultiPartitionsDefinition(
        {
            "model": dg.StaticPartitionsDefinition(models),
            "dataset": dg.StaticPartitionsDefinition(catalog.dataset_names),
        }
    )


def partition_tags(key: PartitionKey) -> dict[str, str]:
    """Run tags that select one partition (``dagster job execute --tags``)."""
    return {
        "dagster/partition": key.key,
        "dagster/partition/dataset": key.dataset,
        "dagster/partition/model": key.model,
    }


def to_key(partition_key: str | dg.MultiPartitionKey) -> PartitionKey:
    if isinstance(partition_key, dg.MultiPartitionKey):
        dims = partition_key.keys_by_dimension
        return PartitionKey(model=dims["model"], dataset=dims["dataset"])
    return PartitionKey.parse(str(partition_key))


def current_partitions(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[PartitionKey]:
    """The grid cells this step covers: one, or several in a single-run backfill."""
    if isinstance(context, dg.AssetCheckExecutionContext):
        keys = context.op_execution_context.partition_keys
    else:
        keys = context.partition_keys
    return [to_key(k) for k in keys]


def dataset_partitions(grid: dg.MultiPartitionsDefinition) -> dg.PartitionsDefinition:
    """One partition per dataset: the grid's ``dataset`` dimension.

    The per-dataset assets (``prompt_versions``, ``dataset_samples``) are partitioned by
    it; ``generations`` maps each grid partition ``<dataset>|<model>`` to its dataset's
    partition (:data:`BY_DATASET`).
    """
    return grid.get_partitions_def_for_dimension("dataset")


# A grid partition depends on its dataset's partition of a per-dataset asset.
BY_DATASET = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset")
