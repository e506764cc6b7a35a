"""Seeding an instance with many run records at once, without executing them.

The nightly schedule decides from run records alone, so a grid of 10,000 partitions with
its history can be recorded in seconds: one bulk insert into the run storage's tables
(the same rows ``DagsterInstance.add_run`` writes one transaction at a time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable

from eval_pipeline.defs.schedules import INPUTS_TAG, REGRESSION_SUITE_JOB

_FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass(frozen=True)
class SeedRun:
    """One recorded run of a partition: its status, inputs tag and when it last changed.

    Any status but QUEUED (a queued run needs the origin of a launchable job).
    """

    key: str
    status: dg.DagsterRunStatus
    updated_at: float
    fingerprint: str | None = None
    job_name: str = REGRESSION_SUITE_JOB
    created_at: float | None = None  # default: a minute before it last changed


def seed_runs(instance: dg.DagsterInstance, runs: Iterable[SeedRun], batch: int = 2000) -> int:
    """Record ``runs`` in order (later runs get higher storage ids); returns how many.

    Give them in order of creation, as a real instance records them.
    """
    storage = instance.run_storage
    rows: list[dict] = []
    tags: list[dict] = []
    count = 0

    def flush() -> None:
        if rows:
            with storage.connect() as conn:
                conn.execute(RunsTable.insert(), rows)
                conn.execute(RunTagsTable.insert(), tags)
            rows.clear()
            tags.clear()

    for spec in runs:
        dataset, _, model = spec.key.partition("|")
        run_tags = {
            "dagster/partition": spec.key,
            "dagster/partition/dataset": dataset,
            "dagster/partition/model": model,
        }
        if spec.fingerprint is not None:
            run_tags[INPUTS_TAG] = spec.fingerprint
        run = dg.DagsterRun(
            job_name=spec.job_name, run_id=str(uuid.uuid4()), status=spec.status, tags=run_tags
        )
        created = spec.updated_at - 60 if spec.created_at is None else spec.created_at
        values = storage._get_run_insertion_values(  # noqa: SLF001 (the row add_run writes)
            run, datetime.fromtimestamp(created, UTC)
        )
        values["update_timestamp"] = datetime.fromtimestamp(spec.updated_at, UTC)
        # Every row of one bulk insert needs the same columns.
        values["start_time"] = created
        values["end_time"] = spec.updated_at if spec.status in _FINISHED else None
        rows.append(values)
        tags += [
            {"run_id": run.run_id, "key": k, "value": v} for k, v in run.tags_for_storage().items()
        ]
        count += 1
        if len(rows) >= batch:
            flush()
    flush()
    return count
