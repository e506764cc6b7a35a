"""Sensors: regressions, catalog additions, failed runs and finished evaluations.

Each alerts or requests runs.

Every sensor keeps a cursor in the instance, so a restarted daemon carries on where it
stopped instead of alerting again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.adapters import recipes_by_model
from eval_pipeline.defs.automation import automation_sensor, versions_sensor
from eval_pipeline.defs.holds import AGGREGATES, HELD_TAG, REGRESSION_CHECK
from eval_pipeline.defs.jobs import PARTITION_JOBS, REPORTING_JOB
from eval_pipeline.defs.schedules import (
    REGRESSION_SUITE_JOB,
    automation_status,
    batch_by_model,
    batch_request,
)
from eval_pipeline.operations import (
    DuePartition,
    RegressionEvent,
    catalog_additions,
    catalog_fingerprint,
    partition_fingerprints,
    regression_alert,
    regression_events,
    run_failure_alert,
)
from eval_pipeline.resources import CatalogResource
from eval_pipeline.resources.alerts import UI_URL_ENV, AlertsResource
from eval_pipeline.resources.webserver import WebserverResource, location_name

# The error of a step whose blocking check failed.
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"
EVENT_KEY = "regression/event_key"
# Check results read per page of the instance's check history.
BATCH = 500
# An alert the webhook keeps refusing is retried on this many ticks, then given up on
# (still recorded in the instance, marked undelivered).
MAX_DELIVERY_TICKS = 10


def _sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus(automation_status().value)


def build_sensors(
    grid: dg.MultiPartitionsDefinition,
) -> list[dg.SensorDefinition]:
    """Every sensor over ``grid``: alerts, the catalog, reporting, versions and automation."""
    return [
        regression_sensor(),
        catalog_sensor(grid),
        run_failure_sensor(),
        reporting_sensor(),
        versions_sensor(grid),
        automation_sensor(),
    ]


def regression_sensor() -> dg.SensorDefinition:
    """``regression_sensor``: alerts on each failed regression check result."""

    @dg.sensor(
        name="regression_sensor", minimum_interval_seconds=60, default_status=_sensor_status()
    )
    def regression_sensor(
        context: dg.SensorEvaluationContext, alerts: AlertsResource
    ) -> dg.SensorResult:
        """Alerts on every failed ``aggregates_regression`` check result.

        Each newly materialized ``aggregates`` partition is checked against its pinned
        baseline in the same run; for every failed result this sensor records one
        regression event per regressed metric (model, dataset, metric, delta, p-value,
        baseline, run link) as an observation of the ``aggregates`` partition, and POSTs one
        Slack-compatible alert listing them to ``EVAL_PIPELINE_ALERT_WEBHOOK_URL``. Alerts
        the webhook refuses stay in the cursor and are retried on later ticks. An event
        already recorded is never alerted again, even after the cursor is lost.
        """
        instance = context.instance
        state = json.loads(context.cursor) if context.cursor else None
        first = state is None
        state = state or {"after": -1, "seen": [], "pending": []}
        results, after, seen = _resolved_check_results(
            instance, state["after"], state.get("seen", [])
        )
        if first:
            # Switching the sensor on does not replay the instance's history, as with
            # Dagster's run status sensors: what is already resolved counts as seen.
            return dg.SensorResult(
                skip_reason=f"starting after {len(seen)} existing check result(s)",
                cursor=json.dumps({"after": after, "seen": seen, "pending": []}),
            )
        events = [(RegressionEvent(**p["event"]), p["ticks"]) for p in state.get("pending", [])]
        for record in results:
            if record.status != AssetCheckExecutionRecordStatus.FAILED or record.event is None:
                continue
            dagster_event = record.event.dagster_event
            evaluation = dagster_event.event_specific_data if dagster_event else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            metadata = {k: v.value for k, v in evaluation.metadata.items()}
            if record.partition is None and "partitions" in metadata:
                continue  # a run over several cells: each cell's own result is read instead
            partition = record.partition or _run_partition(instance, record.run_id)
            if partition is None:
                context.log.warning(f"{REGRESSION_CHECK} of run {record.run_id} has no partition")
                continue
            for event in regression_events(
                metadata,
                partition=partition,
                run_id=record.run_id,
                run_url=alerts.run_url(record.run_id),
                check_storage_id=record.id,
            ):
                events.append((event, 0))
        fresh = [(e, t) for e, t in events if not _recorded(instance, e)]
        still_pending = _deliver(context, alerts, fresh)
        cursor = json.dumps(
            {
                "after": after,
                "seen": seen,
                "pending": [{"event": asdict(e), "ticks": t} for e, t in still_pending],
            }
        )
        if not fresh:
            return dg.SensorResult(skip_reason="no new regressions", cursor=cursor)
        delivered = len(fresh) - len(still_pending)
        return dg.SensorResult(
            skip_reason=f"{delivered} regression event(s) recorded, {len(still_pending)} pending",
            cursor=cursor,
        )

    return regression_sensor


def catalog_sensor(grid: dg.MultiPartitionsDefinition) -> dg.SensorDefinition:
    """``catalog_sensor``: reloads the code location and evaluates new grid partitions."""

    @dg.sensor(
        name="catalog_sensor",
        job_name=REGRESSION_SUITE_JOB,
        minimum_interval_seconds=60,
        default_status=_sensor_status(),
    )
    def catalog_sensor(
        context: dg.SensorEvaluationContext,
        catalog: CatalogResource,
        webserver: WebserverResource,
    ) -> dg.SensorResult:
        """Evaluates a model or dataset as soon as it is added to the catalog.

        Compares the catalog on disk with the models and datasets this sensor has seen (its
        cursor; the first tick only records them). The partition grid comes from the
        catalog when the definitions load, so on a change (a model or dataset added or
        removed) the sensor asks the webserver at ``EVAL_PIPELINE_UI_URL`` to reload the
        code location, once per change. It then requests a regression suite run for each
        partition a new model or dataset brings that has no ``aggregates`` yet, as soon as
        its own definitions hold them; until then it waits and says so.
        """
        cat = catalog.load()
        # The grid's models: models.yaml's and each recipe's fine-tuned model, trained or not
        # (adapter_sensor evaluates those once trained).
        adapters = set(recipes_by_model(cat))
        models, datasets = sorted({*cat.model_slugs, *adapters}), cat.dataset_names
        if not context.cursor:
            return dg.SensorResult(
                skip_reason=f"recorded {len(models)} models and {len(datasets)} datasets",
                cursor=json.dumps({"models": models, "datasets": datasets}),
            )
        seen = json.loads(context.cursor)
        if set(models) == set(seen["models"]) and set(datasets) == set(seen["datasets"]):
            return dg.SensorResult(
                skip_reason="no new models or datasets",
                cursor=json.dumps({**seen, "models": models, "datasets": datasets}),
            )
        change = catalog_fingerprint(models, datasets)
        reloaded = ""
        if seen.get("reload") != change:
            reloaded = _reload(context, webserver, models, datasets, seen)
            seen = {**seen, "reload": change}
        added = catalog_additions(models, datasets, seen["models"], seen["datasets"])
        loaded = {str(k) for k in grid.get_partition_keys()}
        missing = [k for k in added if k not in loaded]
        if missing:
            # The models and datasets seen stay as they were: once this sensor's own
            # definitions reload, the same additions are found again and requested.
            return dg.SensorResult(
                skip_reason=(
                    f"{reloaded}{len(missing)} new partition(s) such as {missing[0]} are not "
                    "in this sensor's definitions yet; they are requested on the first tick "
                    "after the code location reloads"
                ),
                cursor=json.dumps(seen),
            )
        cursor = json.dumps({**seen, "models": models, "datasets": datasets})
        done = set(context.instance.get_materialized_partitions(AGGREGATES))
        todo = [k for k in added if k not in done and PartitionKey.parse(k).model not in adapters]
        if not todo:
            return dg.SensorResult(
                skip_reason=f"{reloaded}no new partition to evaluate", cursor=cursor
            )
        fingerprints = partition_fingerprints(cat, todo)
        due = [DuePartition(k, fingerprints[k], "added to the catalog") for k in todo]
        # A new model's datasets in one run (one model load), as the nightly suite does.
        requests = [
            batch_request(cat, batch, "catalog") for batch in batch_by_model(due, cat.dataset_names)
        ]
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return catalog_sensor


def run_failure_sensor() -> dg.SensorDefinition:
    """``run_failure_sensor``: alerts on each failed run."""

    @dg.run_failure_sensor(
        name="run_failure_sensor", minimum_interval_seconds=30, default_status=_sensor_status()
    )
    def run_failure_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
        """Alerts on every failed run with its partition, failing steps and their errors.

        A run failed by the blocking ``aggregates_regression`` check alone is left to
        ``regression_sensor``, which alerts on the regressed metrics.

        Dagster keeps this sensor's cursor (the last run status event it handled), so each
        failure is alerted once. When the webhook refuses the alert the tick fails and the
        same failure is tried again on the next tick.
        """
        run = context.dagster_run
        failures: list[tuple[str | None, str]] = []
        blocked = []
        for event in context.get_step_failure_events():
            error = getattr(event.event_specific_data, "error", None)
            failures.append((event.step_key, error.message if error else event.message or ""))
            blocked.append(error is not None and error.cls_name == CHECK_FAILED_ERROR)
        if run.tags.get(HELD_TAG) and blocked and all(blocked):
            # Failed by the blocking regression check alone: regression_sensor alerts on
            # it, with the regressed metrics; one alert per regression, not two.
            context.log.info(f"run {run.run_id} held a regressed cell; regression_sensor alerts")
            return
        if not failures:
            failures.append((None, context.failure_event.message or "run failed"))
        payload = run_failure_alert(
            job_name=run.job_name,
            run_id=run.run_id,
            run_url=alerts.run_url(run.run_id),
            partition=run.tags.get("dagster/partition"),
            failures=failures,
        )
        context.log.info(payload["text"])
        result = alerts.post(payload)
        if result is not None and not result.ok:
            raise dg.Failure(f"could not deliver the run-failure alert: {result.error}")

    return run_failure_sensor


def reporting_sensor() -> dg.SensorDefinition:
    """``reporting_sensor``: one reporting run once evaluation runs have finished."""

    @dg.sensor(
        name="reporting_sensor",
        job_name=REPORTING_JOB,
        minimum_interval_seconds=300,
        default_status=_sensor_status(),
    )
    def reporting_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Rebuilds the leaderboard and reports once evaluation runs have finished.

        Requests ``reporting_job`` when ``aggregates`` has a materialization newer than the
        last one reported on (the cursor) and no evaluation run or backfill is queued or in
        progress, so a backfill or a night of the suite ends with one report instead of
        one per partition. A handful of instance queries per tick whatever the grid's size.
        """
        instance = context.instance
        latest = instance.fetch_materializations(AGGREGATES, limit=1).records
        newest = latest[0].storage_id if latest else 0
        reported = int(context.cursor) if context.cursor else 0
        if newest <= reported:
            return dg.SkipReason("the reports are up to date")
        busy = _evaluations_in_flight(instance)
        if busy:
            return dg.SkipReason(f"waiting for {busy} to finish")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"reporting:{newest}")], cursor=str(newest)
        )

    return reporting_sensor


def _reload(
    context: dg.SensorEvaluationContext,
    webserver: WebserverResource,
    models: Sequence[str],
    datasets: Sequence[str],
    seen: dict,
) -> str:
    """Ask the webserver to reload this code location; returns a line for the tick."""
    origin = context.code_location_origin
    location = location_name(origin.location_name if origin else None)
    added = len(set(models) - set(seen["models"])) + len(set(datasets) - set(seen["datasets"]))
    removed = len(set(seen["models"]) - set(models)) + len(set(seen["datasets"]) - set(datasets))
    change = f"{added} model(s)/dataset(s) added, {removed} removed"
    result = webserver.reload_location(location)
    if result.ok:
        line = (
            f"{change}: the webserver at {webserver.url} reloaded code location {location} "
            f"in {result.seconds:.1f} s; "
        )
        context.log.info(line)
        return line
    line = (
        f"{change}: could not ask the webserver at {webserver.url} to reload code location "
        f"{location} ({result.error}); reload it by hand (the UI's Deployment page, Reload) "
        f"or restart the webserver, or set {UI_URL_ENV} to its address; "
    )
    context.log.warning(line)
    return line


def _evaluations_in_flight(instance: dg.DagsterInstance) -> str | None:
    """What evaluation work is still queued or running (None: nothing)."""
    # Runs launched from the UI's asset selection belong to the implicit asset job.
    for job in (*PARTITION_JOBS, IMPLICIT_ASSET_JOB_NAME):
        if instance.get_run_ids(
            dg.RunsFilter(job_name=job, statuses=IN_PROGRESS_RUN_STATUSES), limit=1
        ):
            return f"{job} runs"
    if instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED]), limit=1
    ):
        return "a backfill"
    return None


def _resolved_check_results(
    instance: dg.DagsterInstance, after: int, seen: Sequence[int]
) -> tuple[list[AssetCheckExecutionRecord], int, list[int]]:
    """New resolved ``aggregates_regression`` results, and the cursor that follows them.

    A result is recorded as planned when its run starts and resolved in place when the
    check finishes, so the cursor cannot simply move past the newest id: ``after`` stops
    before the oldest result still in flight, and ``seen`` lists the resolved ids above it.
    A planned result whose run has ended (it crashed or was cancelled) counts as resolved.
    """
    key = dg.AssetCheckKey(AGGREGATES, REGRESSION_CHECK)
    storage = instance.event_log_storage
    records: list[AssetCheckExecutionRecord] = []
    page: int | None = None
    while True:
        batch = storage.get_asset_check_execution_history(key, limit=BATCH, cursor=page)
        newer = [r for r in batch if r.id > after]
        records.extend(newer)
        if len(batch) < BATCH or len(newer) < len(batch):
            break
        page = batch[-1].id
    records.sort(key=lambda r: r.id)
    planned_runs = {
        r.run_id for r in records if r.status == AssetCheckExecutionRecordStatus.PLANNED
    }
    running = (
        {
            r.dagster_run.run_id
            for r in instance.get_run_records(
                dg.RunsFilter(run_ids=sorted(planned_runs), statuses=IN_PROGRESS_RUN_STATUSES)
            )
        }
        if planned_runs
        else set()
    )
    in_flight = [
        r.id
        for r in records
        if r.status == AssetCheckExecutionRecordStatus.PLANNED and r.run_id in running
    ]
    new_after = min(in_flight) - 1 if in_flight else max((r.id for r in records), default=after)
    already = set(seen)
    resolved = [r for r in records if r.id not in in_flight]
    fresh = [r for r in resolved if r.id not in already]
    new_seen = sorted(r.id for r in resolved if r.id > new_after)
    return fresh, new_after, new_seen


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition") if run else None


def _recorded(instance: dg.DagsterInstance, event: RegressionEvent) -> bool:
    """Whether ``event`` is already recorded (delivered, or given up on) in the instance."""
    result = instance.fetch_observations(
        dg.AssetRecordsFilter(
            asset_key=AGGREGATES, asset_partitions=[f"{event.dataset}|{event.model}"]
        ),
        limit=200,
    )
    for record in result.records:
        observation = record.asset_observation
        value = observation.metadata.get(EVENT_KEY) if observation else None
        if value is not None and value.value == event.key:
            return True
    return False


def _record(instance: dg.DagsterInstance, event: RegressionEvent, delivery: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=AGGREGATES,
            partition=f"{event.dataset}|{event.model}",
            description=f"regression of {event.metric} against {event.baseline}",
            metadata={
                EVENT_KEY: event.key,
                "regression/model": event.model,
                "regression/dataset": event.dataset,
                "regression/metric": event.metric,
                "regression/delta": event.delta if event.delta is not None else float("nan"),
                "regression/p_value": event.p_value if event.p_value is not None else float("nan"),
                "regression/baseline": event.baseline,
                "regression/run": dg.MetadataValue.url(event.run_url),
                "regression/alert": delivery,
            },
        )
    )


def _deliver(
    context: dg.SensorEvaluationContext,
    alerts: AlertsResource,
    events: Sequence[tuple[RegressionEvent, int]],
) -> list[tuple[RegressionEvent, int]]:
    """Post one alert for ``events``; record them; return those still to retry."""
    if not events:
        return []
    payload = regression_alert([e for e, _ in events])
    context.log.warning(payload["text"])
    result = alerts.post(payload)
    if result is None or result.ok:
        delivery = "not configured" if result is None else f"posted ({result.attempts} attempt(s))"
        for event, _ in events:
            _record(context.instance, event, delivery)
        return []
    context.log.error(f"alert not delivered after {result.attempts} attempt(s): {result.error}")
    retry = []
    for event, ticks in events:
        if ticks + 1 >= MAX_DELIVERY_TICKS:
            _record(context.instance, event, f"undelivered: {result.error}")
        else:
            retry.append((event, ticks + 1))
    return retry
