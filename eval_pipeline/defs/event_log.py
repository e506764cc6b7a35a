"""The embedded instance's event log: Dagster's SQLite storage, writing a run's plan at once.

When Dagster creates a run over a range of partitions it writes one "materialization
planned" event per asset and partition: 400 for a night's run of one model over 100
datasets. Those rows are what the UI's partition view and the automation's
``in_progress()`` read, so they are kept; what this class changes is how they are
written. Dagster's SQLite storage writes each event on its own (a connection, a commit
and an asset-index update in two databases, about 7 ms), and its batch method loops over
them. :meth:`BatchedSqliteEventLogStorage.store_event_batch` writes a run of planned
events as one insert per database and one index update per asset, in one transaction
each: the same rows, about 15 times faster.

Dagster hands events to ``store_event_batch`` only when ``DAGSTER_EVENT_BATCH_SIZE`` is
set (:data:`BATCH_ENV`); ``scripts/ui.sh`` sets it for the daemon and the webserver,
the processes that create runs. Without it the class behaves as Dagster's own.
``dagster.yaml`` configures it; ``docs/operations.md`` ("The first night's launch")
has the figures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

import dagster as dg
from dagster import EventLogEntry
from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData, serialize_value

# The variable that makes Dagster hand a run's planned events to ``store_event_batch``,
# and the batch size ``scripts/ui.sh`` gives it (more than a run of the largest grid
# plans, so a run's plan is one batch).
BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
BATCH_SIZE = 100_000

_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
_PLAN = {_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, in its default place: ``history/runs/`` of the instance.

    No config: the directory is the instance's own (``$DAGSTER_HOME``), known when the
    instance registers itself, so an existing home keeps its history when its
    ``dagster.yaml`` switches to this class, and back.
    """

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        # SqliteEventLogStorage.__init__ opens the index database: it runs in
        # register_instance, once the instance's directory is known.
        self._inst_data = inst_data

    def register_instance(self, instance: dg.DagsterInstance) -> None:
        base_dir = os.path.join(instance.root_directory, "history", "runs", "")
        super().__init__(base_dir=base_dir, inst_data=self._inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> Any:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each stretch of one run's plan in one write per database; the rest as Dagster does."""
        for (plan, _), stretch in groupby(events, key=lambda e: (_plan(e), e.run_id)):
            if plan:
                self._store_plan(list(stretch))
            else:
                for event in stretch:
                    self.store_event(event)

    def _store_plan(self, events: list[EventLogEntry]) -> None:
        """What :meth:`store_event` does for each of ``events``, in one transaction per database.

        ``events`` are one run's planned materializations and check evaluations. The run's
        database and the cross-run index get the same event rows as one by one; the asset
        index takes each asset's last planned materialization (as the last of the
        one-by-one updates leaves it), and each planned check its rows per partition.
        """
        if len(events) < 2 or not self.supports_asset_checks:
            for event in events:
                self.store_event(event)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        insert = SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
        )
        with self.index_transaction() as conn:
            ids = list(conn.execute(insert, rows).scalars())
            materializations = [(e, i) for e, i in zip(events, ids, strict=True) if _planned(e)]
            checks = [(e, i) for e, i in zip(events, ids, strict=True) if not _planned(e)]
            if materializations:
                self._store_asset_event_tags(
                    conn, [e for e, _ in materializations], [i for _, i in materializations]
                )
            last_by_asset = {e.get_dagster_event().asset_key: (e, i) for e, i in materializations}
            for event, event_id in last_by_asset.values():
                self._store_asset_event(conn, event, event_id)
            check_rows = [row for event, i in checks for row in self._check_plan_rows(event, i)]
            if check_rows:
                conn.execute(AssetCheckExecutionsTable.insert(), check_rows)

    def _check_plan_rows(self, event: EventLogEntry, event_id: int) -> list[dict[str, Any]]:
        """The ``asset_check_executions`` rows Dagster writes for a planned check: one per partition."""
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        partitions = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        serialized, timestamp = serialize_value(event), self._event_insert_timestamp(event)
        return [
            {
                "asset_key": planned.asset_key.to_string(),
                "check_name": planned.check_name,
                "partition": partition,
                "run_id": event.run_id,
                "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
                "evaluation_event": serialized,
                "evaluation_event_timestamp": timestamp,
                "evaluation_event_storage_id": event_id,
            }
            for partition in partitions
        ]


def _planned(event: EventLogEntry) -> bool:
    return event.is_dagster_event and event.dagster_event_type == _PLANNED


def _plan(event: EventLogEntry) -> bool:
    """A planned materialization or check evaluation: what a new run writes in bulk."""
    return event.is_dagster_event and event.dagster_event_type in _PLAN
