"""The nightly regression suite schedule."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.holds import HELD_TAG, HELD_TAG_VALUE
from eval_pipeline.defs.run_queue import queue_tags
from eval_pipeline.operations import DuePartition, LastResult, partition_fingerprints, select_due
from eval_pipeline.resources import CatalogResource

REGRESSION_SUITE_JOB = "regression_suite_job"

# Run tags written on every run the automation requests. INPUTS_TAG is how the schedule
# later knows what a successful run evaluated; the queue tags (defs/run_queue.py: provider,
# where it runs, the API's quota, the SLURM profile) are what the production run queue
# limits concurrency by (deploy/dagster.yaml).
INPUTS_TAG = "eval_pipeline/inputs"
REASON_TAG = "eval_pipeline/reason"
PARTITION_TAG = "dagster/partition"
# A run over a rectangle of the grid (one model, datasets next to each other in the grid's
# order): Dagster's partition range tags. Its INPUTS_TAG is then a JSON object, the inputs
# fingerprint of every partition it covers.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# The model of a run over several partitions (what finds it in the history).
BATCH_TAG = "eval_pipeline/batch_model"

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
    return {INPUTS_TAG: fingerprint, REASON_TAG: reason, **queue_tags(model)}


# Partition keys per tag-filtered query: SQLite binds at most 32,766 parameters.
_KEYS_PER_QUERY = 5000
# A suite run failed by the blocking regression check evaluated its cells (the hold is the
# reports' business, see defs/holds.py): it counts as their last result like a success,
# so a regressed cell is not evaluated again every night until its inputs change.
_HELD = {HELD_TAG: HELD_TAG_VALUE}
_FINISHED: tuple[tuple[dg.DagsterRunStatus, dict[str, str]], ...] = (
    (dg.DagsterRunStatus.SUCCESS, {}),
    (dg.DagsterRunStatus.FAILURE, _HELD),
)


def suite_history(
    instance: dg.DagsterInstance, keys: Sequence[str], *, window_start: float
) -> tuple[dict[str, LastResult], set[str]]:
    """The latest successful suite run of every partition in ``keys``, and those in flight.

    A run failed only by the blocking regression check (tagged ``eval_pipeline/held``)
    counts as successful: it evaluated its cells.

    A handful of instance queries whatever the grid's size (one per query below, the
    second split per 5,000 keys), instead of two per partition:

    1. successful suite runs created since ``window_start`` (the nightly age limit); the
       newest per partition is its latest (any later one was created later still);
    2. only for partitions without one, which are due anyway: their newest successful run
       of any age (a light query over the runs table's partition column, then those runs'
       records, and the runs over several partitions of their models);
    3. queued or running suite runs.

    Returns:
        The last result per partition that has one, and the keys with a run in flight.
    """
    wanted = set(keys)
    last: dict[str, LastResult] = {}
    after = datetime.fromtimestamp(window_start, UTC)
    recent = [
        *instance.get_run_records(
            dg.RunsFilter(
                job_name=REGRESSION_SUITE_JOB,
                statuses=[dg.DagsterRunStatus.SUCCESS],
                created_after=after,
            )
        ),
        *instance.get_run_records(
            dg.RunsFilter(
                job_name=REGRESSION_SUITE_JOB,
                statuses=[dg.DagsterRunStatus.FAILURE],
                tags=_HELD,
                created_after=after,
            )
        ),
    ]
    _keep_latest(recent, wanted, last)
    missing = sorted(wanted - set(last))
    older_ids: list[str] = []
    for start in range(0, len(missing), _KEYS_PER_QUERY):
        chunk = missing[start : start + _KEYS_PER_QUERY]
        older_ids += [
            data.run_id
            for status, tags in _FINISHED
            for data in instance.run_storage.get_run_partition_data(
                dg.RunsFilter(
                    job_name=REGRESSION_SUITE_JOB,
                    statuses=[status],
                    tags={PARTITION_TAG: chunk, **tags},
                )
            )
        ]
    older: list[dg.RunRecord] = []
    for start in range(0, len(older_ids), _KEYS_PER_QUERY):
        older += instance.get_run_records(
            dg.RunsFilter(run_ids=older_ids[start : start + _KEYS_PER_QUERY])
        )
    # Runs over several partitions name no partition: find them by their model.
    models = sorted({PartitionKey.parse(k).model for k in missing})
    for status, tags in _FINISHED if models else ():
        older += instance.get_run_records(
            dg.RunsFilter(
                job_name=REGRESSION_SUITE_JOB, statuses=[status], tags={BATCH_TAG: models, **tags}
            )
        )
    _keep_latest(older, set(missing), last)
    in_flight = {
        key
        for record in instance.get_run_records(
            dg.RunsFilter(job_name=REGRESSION_SUITE_JOB, statuses=_IN_FLIGHT)
        )
        for key in run_inputs(record.dagster_run.tags)
    }
    return last, in_flight & wanted


def run_inputs(tags: Mapping[str, str]) -> dict[str, str | None]:
    """The partitions a suite run covers, each with the inputs fingerprint it evaluated.

    A run of one partition names it (``dagster/partition``) and its fingerprint; a run of
    several (:func:`batch_by_model`) carries a JSON object of them in ``INPUTS_TAG``.
    """
    inputs = tags.get(INPUTS_TAG)
    if tags.get(RANGE_START_TAG) and inputs and inputs.startswith("{"):
        return dict(json.loads(inputs))
    key = tags.get(PARTITION_TAG)
    return {key: inputs} if key else {}


def _keep_latest(
    records: Sequence[dg.RunRecord], wanted: set[str], last: dict[str, LastResult]
) -> None:
    """Record each wanted partition's newest run of ``records`` (storage id order)."""
    for record in sorted(records, key=lambda r: r.storage_id, reverse=True):
        finished = record.end_time or record.update_timestamp.timestamp()
        for key, fingerprint in run_inputs(record.dagster_run.tags).items():
            if key in wanted and key not in last:
                last[key] = LastResult(fingerprint=fingerprint, finished_at=finished)


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
            batch_request(cat, batch, f"nightly:{night}")
            for batch in batch_by_model(due, cat.dataset_names)
        ]

    return [nightly_regression_suite_schedule]


def batch_by_model(
    due: Sequence[DuePartition], datasets: Sequence[str]
) -> list[list[DuePartition]]:
    """Due partitions grouped into runs, one model each (one model load per run).

    A run holds one model's due datasets that lie next to each other in the grid's
    dataset order: a rectangle of the grid, which Dagster's partition range tags select.
    The first night of a grid is then one run per model instead of one per partition.
    """
    position = {name: i for i, name in enumerate(datasets)}
    by_model: dict[str, list[tuple[int, DuePartition]]] = defaultdict(list)
    for item in due:
        key = PartitionKey.parse(item.key)
        by_model[key.model].append((position.get(key.dataset, -1), item))
    batches: list[list[DuePartition]] = []
    for model in sorted(by_model):
        previous = None
        for index, item in sorted(by_model[model], key=lambda pair: pair[0]):
            if previous is not None and index == previous + 1 and index >= 0:
                batches[-1].append(item)
            else:
                batches.append([item])
            previous = index
    return batches


def batch_request(catalog: Catalog, batch: Sequence[DuePartition], prefix: str) -> dg.RunRequest:
    """The run request of one batch: a partition, or a range of one model's datasets.

    Its run key is ``prefix`` and what the batch evaluates, so a repeated tick requests
    nothing twice.
    """
    first, last = batch[0], batch[-1]
    if len(batch) == 1:
        return dg.RunRequest(
            run_key=f"{prefix}:{first.key}:{first.fingerprint}",
            partition_key=first.key,
            tags=run_tags(catalog, first.key, first.fingerprint, first.reason),
        )
    inputs = {d.key: d.fingerprint for d in batch}
    reasons = sorted({d.reason for d in batch})
    tags = run_tags(catalog, first.key, json.dumps(inputs, sort_keys=True), "; ".join(reasons))
    return dg.RunRequest(
        run_key=f"{prefix}:{first.key}..{last.key}:{content_hash(inputs, 16)}",
        tags={
            **tags,
            RANGE_START_TAG: first.key,
            RANGE_END_TAG: last.key,
            BATCH_TAG: PartitionKey.parse(first.key).model,
        },
    )
