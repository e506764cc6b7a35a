"""Sensors of the batch route: collect ended provider batches, cancel a cancelled run's.

A run tagged ``eval_pipeline/route=batch`` and ``eval_pipeline/batch_wait=sensor`` submits
its partitions' batches and ends (the step reports the batch ids and fails as pending);
no process waits for them. ``batch_collect_sensor`` looks at the open batches, each on
its own backoff (30 s, then half as long again each time, at most 30 minutes), and when
every batch of a partition has ended requests the run that collects them and
materializes the partition. Each look records an observation of ``generations`` for the
partition (provider, batch id, status, counts, age), which the UI shows on the asset's
partition, and the sensor's skip reason lists the open batches. ``batch_cancel_sensor`` cancels the open batches of a run
that was cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.defs.jobs import BATCH_WAIT_TAG, ROUTE_TAG
from eval_pipeline.defs.schedules import automation_status
from eval_pipeline.engine.batch import (
    BatchBook,
    Submission,
    cancel_open_batches,
    poll_open_batches,
)
from eval_pipeline.providers import create_provider
from eval_pipeline.providers.batch import BatchApi
from eval_pipeline.resources import CatalogResource, StoreResource


def _api_for(catalog: Catalog) -> Callable[[str], BatchApi | None]:
    """The batch API of a catalog model, built once per model (None: no longer in the catalog)."""
    apis: dict[str, BatchApi | None] = {}

    def api_for(model: str) -> BatchApi | None:
        if model not in apis:
            apis[model] = (
                create_provider(catalog.model(model)).batch_api()
                if model in catalog.model_slugs
                else None
            )
        return apis[model]

    return api_for


def batch_line(record: Submission) -> str:
    """One line of an open batch: partition, provider, id, status, counts, age."""
    age = time.time() - (record.submitted_at or record.intent_at)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(record.counts.items())) or "no counts yet"
    return (
        f"{record.partition}: {record.provider} batch {record.batch_id} {record.status or 'new'}"
        f" ({record.count} requests; {counts}), {age / 60:.0f} min old"
    )


def batch_observation(record: Submission) -> dg.AssetObservation:
    """An observation of ``generations`` for the record's partition: the batch as it is now."""
    return dg.AssetObservation(
        asset_key=dg.AssetKey("generations"),
        partition=record.partition,
        metadata={
            "batch/provider": record.provider,
            "batch/id": str(record.batch_id),
            "batch/status": record.status,
            "batch/requests": record.count,
            "batch/counts": dg.MetadataValue.json(dict(record.counts)),
            "batch/age_s": round(time.time() - (record.submitted_at or record.intent_at), 1),
            "batch/submission": record.submission_id,
        },
    )


def carried_tags(instance: dg.DagsterInstance, records: list[Submission]) -> dict[str, str]:
    """The ``eval_pipeline/*`` tags of the runs that submitted ``records``.

    The collecting run evaluates what the submitting run did (its sample limit, budget,
    fallback); without them it would take the whole dataset and batch the rest anew.
    """
    tags: dict[str, str] = {}
    for run_id in sorted({r.run_id for r in records if r.run_id}):
        run = instance.get_run_by_id(run_id)
        if run is not None:
            tags.update({k: v for k, v in run.tags.items() if k.startswith("eval_pipeline/")})
    return tags


def build_batch_sensors(
    *, poll_base_s: float = 30.0, default_status: dg.DefaultSensorStatus | None = None
) -> list[dg.SensorDefinition]:
    """``batch_collect_sensor`` and ``batch_cancel_sensor``."""
    # Running where the project's automation runs (``make ui``), as the other sensors.
    status = default_status or dg.DefaultSensorStatus(automation_status().value)

    @dg.sensor(
        name="batch_collect_sensor",
        job_name="evaluation_job",
        minimum_interval_seconds=30,
        default_status=status,
    )
    def batch_collect_sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.SensorResult:
        """Requests the collecting run of each partition whose provider batches have all ended.

        Each open batch is looked at on its own backoff; the run it requests finds the
        ended batches in the store's submission records, reads their results into the
        response cache and materializes the partition.
        """
        book = BatchBook(store.get().runs_dir / "batches")
        polled = poll_open_batches(book, _api_for(catalog.load()), base_s=poll_base_s)
        ready = polled.ready
        # What the UI shows of each batch looked at: an observation on its partition.
        events = [batch_observation(r) for r in polled.looked_at]
        requests = [
            dg.RunRequest(
                run_key="batch-collect:"
                + content_hash(sorted(r.submission_id for r in records), 16),
                partition_key=partition,
                tags={
                    **carried_tags(context.instance, records),
                    ROUTE_TAG: "batch",
                    BATCH_WAIT_TAG: "sensor",
                },
            )
            for partition, records in ready.items()
        ]
        if not requests:
            lines = [batch_line(r) for r in polled.still_open]
            return dg.SensorResult(
                skip_reason=f"{len(lines)} open provider batches"
                + "".join(f"\n{line}" for line in lines),
                asset_events=events,
            )
        return dg.SensorResult(run_requests=requests, asset_events=events)

    @dg.run_status_sensor(
        name="batch_cancel_sensor",
        run_status=dg.DagsterRunStatus.CANCELED,
        minimum_interval_seconds=30,
        default_status=status,
    )
    def batch_cancel_sensor(
        context: dg.RunStatusSensorContext, catalog: CatalogResource, store: StoreResource
    ) -> None:
        """Cancels the provider batches of a cancelled run (their requests are not billed)."""
        run_id = context.dagster_run.run_id
        book = BatchBook(store.get().runs_dir / "batches")
        cat = catalog.load()
        for model in sorted({r.model for r in book.open() if r.run_id == run_id}):
            if model in cat.model_slugs:
                cancelled = cancel_open_batches(create_provider(cat.model(model)), book, run_id)
                context.log.info(f"{model}: cancelled {cancelled} provider batches of run {run_id}")

    return [batch_collect_sensor, batch_cancel_sensor]
