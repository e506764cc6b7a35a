"""Which cells are held: their latest ``aggregates_regression`` verdict failed.

``aggregates_regression`` is a blocking check: in a run it fails, nothing downstream of
the cell's ``aggregates`` materializes. The reports (``reporting_job``) run on their own,
over every stored cell, so they ask the instance which cells are held and publish those
cells' last passing numbers instead (:mod:`eval_pipeline.regression._holds`). A hold is
released by a passing verdict on the cell: a rerun of the fixed cell, or the check run
again after the baseline is re-pinned.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.dispatch import Metadata
from eval_pipeline.operations import regression_events
from eval_pipeline.regression import HeldMetric, Hold, holds_markdown, published_entry
from eval_pipeline.storage import Store

AGGREGATES = dg.AssetKey("aggregates")
REGRESSION_CHECK = "aggregates_regression"
REGRESSION_CHECK_KEY = dg.AssetCheckKey(AGGREGATES, REGRESSION_CHECK)
# Set on a run whose regression check held a cell: the run failed (the check blocks), but
# it evaluated its cells, so the nightly schedule counts it as their last result.
HELD_TAG = "eval_pipeline/held"
HELD_TAG_VALUE = "regression"
_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def held_cells(instance: dg.DagsterInstance, ui_base_url: str) -> list[Hold]:
    """Every cell whose latest completed regression verdict failed, sorted by partition.

    One query for the latest verdict of every partition, then two per cell that may be
    held (the failure's metrics, and when it last passed). A verdict still planned (its run
    in flight, or a run that died) does not release a hold: the latest completed one counts.
    """
    storage = instance.event_log_storage
    infos = storage.get_asset_check_partition_info([REGRESSION_CHECK_KEY])
    candidates = sorted(
        info.partition_key
        for info in infos
        if info.partition_key is not None
        and info.latest_execution_status != AssetCheckExecutionRecordStatus.SUCCEEDED
    )
    holds = []
    for partition in candidates:
        latest = _latest(instance, partition, _DONE)
        if latest is None or latest.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        passed = _latest(instance, partition, {AssetCheckExecutionRecordStatus.SUCCEEDED})
        holds.append(_hold(latest, partition, passed, ui_base_url))
    return holds


def _latest(
    instance: dg.DagsterInstance, partition: str, status: set[AssetCheckExecutionRecordStatus]
) -> AssetCheckExecutionRecord | None:
    records = instance.event_log_storage.get_asset_check_execution_history(
        REGRESSION_CHECK_KEY,
        limit=1,
        status=status,
        partition_filter=PartitionKeyFilter(key=partition),
    )
    return records[0] if records else None


def _hold(
    failed: AssetCheckExecutionRecord,
    partition: str,
    passed: AssetCheckExecutionRecord | None,
    ui_base_url: str,
) -> Hold:
    dagster_event = failed.event.dagster_event if failed.event else None
    evaluation = dagster_event.event_specific_data if dagster_event else None
    metadata = (
        {k: v.value for k, v in evaluation.metadata.items()}
        if isinstance(evaluation, dg.AssetCheckEvaluation)
        else {}
    )
    run_url = f"{ui_base_url.rstrip('/')}/runs/{failed.run_id}"
    events = regression_events(
        metadata, partition=partition, run_id=failed.run_id, run_url=run_url, check_storage_id=0
    )
    key = PartitionKey.parse(partition)
    return Hold(
        dataset=key.dataset,
        model=key.model,
        baseline=str(metadata.get("baseline") or "?"),
        metrics=tuple(HeldMetric(e.metric, e.delta, e.p_value) for e in events),
        run_id=failed.run_id,
        run_url=run_url,
        failed_at=_when(failed),
        passed_at=_when(passed) if passed else None,
    )


def _when(record: AssetCheckExecutionRecord) -> datetime:
    stamp = record.event.timestamp if record.event else record.create_timestamp
    return datetime.fromtimestamp(stamp, UTC)


def hold_metadata(store: Store, holds: list[Hold]) -> Metadata:
    """The reports' metadata about held cells: how many, and a table of them.

    The table names each held cell's regressed metrics (delta, p-value), the baseline, the
    failed run's link and the run whose numbers the reports show in its place.
    """
    shown = {}
    for hold in holds:
        entry = published_entry(store, hold)
        shown[hold.partition] = entry.run_id if entry else None
    return {
        "held": len(holds),
        "held_cells": dg.MetadataValue.md(holds_markdown(holds, shown)),
    }
