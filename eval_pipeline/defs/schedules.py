"""The nightly regression suite schedule."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.operations import LastResult, partition_fingerprints, select_due
from eval_pipeline.resources import CatalogResource

REGRESSION_SUITE_JOB = "regression_suite_job"

# Run tags written on every run the automation requests. INPUTS_TAG is how the schedule
# later knows what a successful run evaluated; the provider and runs_on tags are what the
# production run queue limits concurrency by (deploy/dagster.yaml).
INPUTS_TAG = "eval_pipeline/inputs"
REASON_TAG = "eval_pipeline/reason"
PROVIDER_TAG = "eval_pipeline/provider"
RUNS_ON_TAG = "eval_pipeline/runs_on"
PARTITION_TAG = "dagster/partition"

CRON_ENV = "EVAL_PIPELINE_NIGHTLY_CRON"
TIMEZONE_ENV = "EVAL_PIPELINE_NIGHTLY_TIMEZONE"
MAX_AGE_ENV = "EVAL_PIPELINE_NIGHTLY_MAX_AGE_HOURS"
AUTOMATION_ENV = "EVAL_PIPELINE_AUTOMATION"

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class NightlySettings:
    """When the nightly suite runs and when an unchanged result counts as stale."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    max_age_hours: float = 168.0

    @classmethod
    def from_env(cls) -> NightlySettings:
        """Read ``EVAL_PIPELINE_NIGHTLY_CRON``, ``_TIMEZONE`` and ``_MAX_AGE_HOURS``."""
        default = cls()
        return cls(
            cron=os.environ.get(CRON_ENV) or default.cron,
            timezone=os.environ.get(TIMEZONE_ENV) or default.timezone,
            max_age_hours=float(os.environ.get(MAX_AGE_ENV) or default.max_age_hours),
        )


def automation_status() -> dg.DefaultScheduleStatus:
    """RUNNING when ``EVAL_PIPELINE_AUTOMATION=on`` (production), else STOPPED.

    Stopped by default so a laptop's ``make ui`` does not start evaluating on its own; an
    operator can also switch each schedule and sensor on in the UI.
    """
    on = os.environ.get(AUTOMATION_ENV, "").lower() in {"1", "on", "true", "running"}
    return dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED


def run_tags(catalog: Catalog, key: str, fingerprint: str, reason: str) -> dict[str, str]:
    """The tags of an automation-requested run of partition ``key``."""
    model = catalog.models[PartitionKey.parse(key).model]
    return {
        INPUTS_TAG: fingerprint,
        REASON_TAG: reason,
        PROVIDER_TAG: model.provider,
        RUNS_ON_TAG: model.runs_on,
    }


# Partition keys per tag-filtered query: SQLite binds at most 32,766 parameters.
_KEYS_PER_QUERY = 5000


def suite_history(
    instance: dg.DagsterInstance, keys: Sequence[str], *, window_start: float
) -> tuple[dict[str, LastResult], set[str]]:
    """The latest successful suite run of every partition in ``keys``, and those in flight.

    A handful of instance queries whatever the grid's size (one per query below, the
    second split per 5,000 keys), instead of two per partition:

    1. successful suite runs created since ``window_start`` (the nightly age limit); the
       newest per partition is its latest (any later one was created later still);
    2. only for partitions without one, which are due anyway: their newest successful run
       of any age (a light query over the runs table's partition column), then those runs'
       records;
    3. queued or running suite runs.

    Returns:
        The last result per partition that has one, and the keys with a run in flight.
    """
    wanted = set(keys)
    last: dict[str, LastResult] = {}
    recent = instance.get_run_records(
        dg.RunsFilter(
            job_name=REGRESSION_SUITE_JOB,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            created_after=datetime.fromtimestamp(window_start, UTC),
        )
    )
    _keep_latest(recent, wanted, last)
    missing = sorted(wanted - set(last))
    older_ids: list[str] = []
    for start in range(0, len(missing), _KEYS_PER_QUERY):
        chunk = missing[start : start + _KEYS_PER_QUERY]
        older_ids += [
            data.run_id
            for data in instance.run_storage.get_run_partition_data(
                dg.RunsFilter(
                    job_name=REGRESSION_SUITE_JOB,
                    statuses=[dg.DagsterRunStatus.SUCCESS],
                    tags={PARTITION_TAG: chunk},
                )
            )
        ]
    for start in range(0, len(older_ids), _KEYS_PER_QUERY):
        records = instance.get_run_records(
            dg.RunsFilter(run_ids=older_ids[start : start + _KEYS_PER_QUERY])
        )
        _keep_latest(records, wanted, last)
    in_flight = {
        data.partition
        for data in instance.run_storage.get_run_partition_data(
            dg.RunsFilter(job_name=REGRESSION_SUITE_JOB, statuses=_IN_FLIGHT)
        )
    }
    return last, in_flight & wanted


def _keep_latest(
    records: Sequence[dg.RunRecord], wanted: set[str], last: dict[str, LastResult]
) -> None:
    """Record each wanted partition's newest run of ``records`` (storage id order)."""
    for record in sorted(records, key=lambda r: r.storage_id, reverse=True):
        key = record.dagster_run.tags.get(PARTITION_TAG)
        if key not in wanted or key in last:
            continue
        finished = record.end_time or record.update_timestamp.timestamp()
        last[key] = LastResult(
            fingerprint=record.dagster_run.tags.get(INPUTS_TAG), finished_at=finished
        )


def build_schedules(
    grid: dg.MultiPartitionsDefinition, settings: NightlySettings | None = None
) -> list[dg.ScheduleDefinition]:
    """The nightly schedule over ``grid`` (the partitions the loaded definitions know)."""
    settings = settings or NightlySettings.from_env()
    max_age_s = settings.max_age_hours * 3600

    @dg.schedule(
        name="nightly_regression_suite_schedule",
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        job_name=REGRESSION_SUITE_JOB,
        default_status=automation_status(),
    )
    def nightly_regression_suite_schedule(
        context: dg.ScheduleEvaluationContext, catalog: CatalogResource
    ) -> dg.SkipReason | list[dg.RunRequest]:
        """Runs the regression suite for every model x dataset that needs it.

        A partition is due when it has never been evaluated by the suite, when its inputs
        (model entry, prompt version, dataset version) differ from those of its last
        successful suite run, or when that run is older than the configured age
        (``EVAL_PIPELINE_NIGHTLY_MAX_AGE_HOURS``, default a week). Partitions with a suite
        run queued or in progress are left alone. Run keys name the night, the partition and
        its inputs, so a repeated tick requests nothing twice.
        """
        cat = catalog.load()
        keys = [str(k) for k in grid.get_partition_keys()]
        current = partition_fingerprints(cat, keys)
        now = context.scheduled_execution_time.timestamp()
        last, in_flight = suite_history(
            context.instance, list(current), window_start=now - max_age_s
        )
        due = select_due(current, last, now=now, max_age_s=max_age_s, in_flight=in_flight)
        if not due:
            busy = f" ({len(in_flight)} with a suite run in flight)" if in_flight else ""
            return dg.SkipReason(f"all {len(current)} partitions are up to date{busy}")
        night = context.scheduled_execution_time.date().isoformat()
        return [
            dg.RunRequest(
                run_key=f"nightly:{night}:{d.key}:{d.fingerprint}",
                partition_key=d.key,
                tags=run_tags(cat, d.key, d.fingerprint, d.reason),
            )
            for d in due
        ]

    return [nightly_regression_suite_schedule]
