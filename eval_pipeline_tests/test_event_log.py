"""The embedded instance's event log (dagster.yaml, eval_pipeline/defs/event_log.py).

A run over a range of partitions plans one event per asset and partition. With
``DAGSTER_EVENT_BATCH_SIZE`` set (as ``scripts/ui.sh`` sets it), the project's storage
writes them at once. These tests create the same runs on two instances of the
repository's ``dagster.yaml``, one writing event by event and one in batches, and compare
what Dagster then reads: the run's events, the partitions in progress and failed, the
asset index, and how many database connections the writes took.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import AssetMaterializationPlannedData, EngineEventData
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from eval_pipeline.defs.event_log import BATCH_ENV, BATCH_SIZE, BatchedSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[1]
KEYS = [f"d{i:02d}" for i in range(12)]
PARTS = dg.StaticPartitionsDefinition(KEYS)


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run())
def rows(context) -> None:
    """Stands in for generations."""


@dg.asset(partitions_def=PARTS, deps=[rows], backfill_policy=dg.BackfillPolicy.single_run())
def totals(context) -> None:
    """Stands in for aggregates."""


@dg.asset_check(asset=totals, partitions_def=PARTS)
def totals_steady(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


DEFS = dg.Definitions(
    assets=[rows, totals],
    asset_checks=[totals_steady],
    jobs=[dg.define_asset_job("night_job", selection=[rows, totals], partitions_def=PARTS)],
)
PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED


def _instance(home: Path) -> dg.DagsterInstance:
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _range_run(instance: dg.DagsterInstance, first: str, last: str) -> dg.DagsterRun:
    """A run of the job over ``first``..``last``, as the nightly schedule requests it."""
    return instance.create_run_for_job(
        DEFS.resolve_job_def("night_job"),
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


def _planned_rows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str | None]]:
    return [
        (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition)
        for e in instance.all_logs(run_id, of_type=PLANNED)
        if e.dagster_event is not None and e.dagster_event.asset_key is not None
    ]


def _statuses(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str]:
    found = instance.get_status_by_partition(key, KEYS, PARTS) or {}
    return {k: v.value for k, v in found.items()}


def _night(instance: dg.DagsterInstance) -> dict[str, object]:
    """Two range runs (one left in progress, one failed); what Dagster reads back."""
    running = _range_run(instance, "d00", "d05")
    failed = _range_run(instance, "d06", "d11")
    instance.handle_run_event(
        failed.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_FAILURE.value,
            job_name=failed.job_name,
            message="the run failed",
        ),
    )
    planned = instance.get_latest_planned_materialization_info(rows.key)
    return {
        "running_rows": sorted(_planned_rows(instance, running.run_id)),
        "failed_rows": sorted(_planned_rows(instance, failed.run_id)),
        "rows_status": _statuses(instance, rows.key),
        "totals_status": _statuses(instance, totals.key),
        "attempts": {
            p: "running" if run_id == running.run_id else "failed"
            for p, (
                run_id,
                _,
            ) in instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                totals.key
            ).items()
        },
        "last_planned_run": "failed" if planned and planned.run_id == failed.run_id else planned,
        "last_run_ids": {
            r.asset_entry.asset_key.to_user_string(): r.asset_entry.last_run_id == failed.run_id
            for r in instance.get_asset_records([rows.key, totals.key])
        },
        "check_planned": sorted(
            (r.partition, r.run_id == running.run_id)
            for r in instance.event_log_storage.get_asset_check_execution_history(
                totals_steady.check_key, limit=100
            )
        ),
    }


def test_a_runs_planned_partitions_written_at_once_read_back_as_written_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BATCH_ENV, raising=False)
    with _instance(tmp_path / "one_by_one") as instance:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        expected = _night(instance)
    monkeypatch.setenv(BATCH_ENV, str(BATCH_SIZE))
    with _instance(tmp_path / "batched") as instance:
        batched = _night(instance)

    assert batched == expected
    # What is compared is what the UI and the automation read: every partition of a run
    # in progress while it runs and failed once it failed, for both assets.
    assert Counter(expected["rows_status"].values()) == {"IN_PROGRESS": 6, "FAILED": 6}
    assert Counter(expected["totals_status"].values()) == {"IN_PROGRESS": 6, "FAILED": 6}
    assert len(expected["running_rows"]) == 12 and len(expected["failed_rows"]) == 12
    assert expected["last_run_ids"] == {"rows": True, "totals": True}
    # The history stays under the instance's own directory, where Dagster's default puts it.
    assert (tmp_path / "batched" / "history" / "runs" / "index.db").is_file()


def test_a_runs_plan_takes_one_connection_per_database_in_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: Counter[str] = Counter()
    with _instance(tmp_path / "home") as instance:
        storage = instance.event_log_storage
        for name in ("run_connection", "index_connection"):
            original = getattr(storage, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                counts[_name] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(storage, name, counted)
        monkeypatch.delenv(BATCH_ENV, raising=False)
        _range_run(instance, "d00", "d11")
        one_by_one = dict(counts)
        counts.clear()
        monkeypatch.setenv(BATCH_ENV, str(BATCH_SIZE))
        _range_run(instance, "d00", "d11")
        batched = dict(counts)
    # The run's plan: 24 planned materializations and one planned check. One by one, each
    # takes a connection to the run's database and one to the index (the check a second,
    # for its rows per partition); in a batch the plan takes one of each. The run's other
    # events are the same both ways.
    assert one_by_one["run_connection"] - batched["run_connection"] == 25 - 1
    assert one_by_one["index_connection"] - batched["index_connection"] == 26 - 1


def test_a_mixed_batch_keeps_every_event_and_its_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run workers batch other events too: they are stored as Dagster stores them, in order."""

    def entry(run_id: str, event: dg.DagsterEvent) -> dg.EventLogEntry:
        return dg.EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run_id,
            timestamp=1.0,
            dagster_event=event,
            job_name="night_job",
        )

    def planned(partition: str) -> dg.DagsterEvent:
        return dg.DagsterEvent.build_asset_materialization_planned_event(
            "night_job",
            "rows",
            AssetMaterializationPlannedData(rows.key, partition=partition),
        )

    engine = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ENGINE_EVENT.value,
        job_name="night_job",
        message="between the plans",
        event_specific_data=EngineEventData(),
    )
    batch = [
        entry("run-a", planned("d00")),
        entry("run-a", planned("d01")),
        entry("run-a", engine),
        entry("run-a", planned("d02")),
        entry("run-b", planned("d03")),
        entry("run-b", planned("d04")),
    ]

    def stored(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str | None]]:
        return [
            (e.dagster_event.event_type_value, e.dagster_event.partition)
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None
        ]

    with _instance(tmp_path / "one_by_one") as instance:
        for event in batch:
            instance.event_log_storage.store_event(event)
        expected = [stored(instance, r) for r in ("run-a", "run-b")]
    with _instance(tmp_path / "batched") as instance:
        instance.event_log_storage.store_event_batch(batch)
        assert [stored(instance, r) for r in ("run-a", "run-b")] == expected
        status = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
            rows.key
        )
    assert expected[0][2] == ("ENGINE_EVENT", None) and len(expected[1]) == 2
    assert {p: run for p, (run, _) in status.items()} == {
        "d00": "run-a",
        "d01": "run-a",
        "d02": "run-a",
        "d03": "run-b",
        "d04": "run-b",
    }


def test_ui_script_sets_the_batch_size_the_bench_uses() -> None:
    text = (REPO / "scripts" / "ui.sh").read_text()
    found = re.search(rf"export {BATCH_ENV}=\$\{{{BATCH_ENV}:-(\d+)\}}", text)
    assert found is not None and int(found.group(1)) == BATCH_SIZE
