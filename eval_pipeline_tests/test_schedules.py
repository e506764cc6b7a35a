"""The nightly regression suite schedule, evaluated against a real instance."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import dagster as dg
import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.holds import HELD_TAG, HELD_TAG_VALUE
from eval_pipeline.defs.schedules import (
    INPUTS_TAG,
    NightlySettings,
    batch_by_model,
    build_schedules,
    run_inputs,
    suite_history,
)
from eval_pipeline.operations import (
    DuePartition,
    LastResult,
    partition_fingerprints,
    select_due,
)
from eval_pipeline.resources import CatalogResource
from eval_pipeline_tests.opsupport import ONE_MODEL, no_dangling_defs_state, run_suite
from eval_pipeline_tests.projects import make_project
from eval_pipeline_tests.runseed import SeedRun, seed_runs

NAME = "nightly_regression_suite_schedule"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", ONE_MODEL, datasets=("qa", "json-extract"))


def evaluate(project: Path, instance, when: dt.datetime | None = None):
    """One tick at ``when`` (default: now); returns the ScheduleExecutionData."""
    with no_dangling_defs_state():
        defs = build_definitions(str(project), str(project / "store"))
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when or dt.datetime.now(dt.UTC),
            resources={"catalog": CatalogResource(root=str(project))},
            repository_def=defs.get_repository_def(),
        )
        return defs.resolve_schedule_def(NAME).evaluate_tick(context)


def covered(request: dg.RunRequest) -> dict[str, str | None]:
    """The partitions a request covers, with the inputs fingerprint of each."""
    if request.partition_key:
        return {request.partition_key: request.tags[INPUTS_TAG]}
    return run_inputs(request.tags)


def run_requested(project: Path, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a requested partition (or range) as the daemon would, with the request's tags."""
    return run_suite(
        project, project / "store", request.partition_key, instance, tags=dict(request.tags)
    )


def test_the_first_night_requests_each_model_once_with_inputs_and_provider_tags(project):
    with dg.instance_for_test() as instance:
        data = evaluate(project, instance)
        # One model, two datasets next to each other: one run over both.
        [request] = data.run_requests
        assert request.partition_key is None
        assert request.tags["dagster/asset_partition_range_start"] == "json-extract|fake-good"
        assert request.tags["dagster/asset_partition_range_end"] == "qa|fake-good"
        inputs = covered(request)
        assert sorted(inputs) == ["json-extract|fake-good", "qa|fake-good"]
        assert all(len(fingerprint or "") == 16 for fingerprint in inputs.values())
        assert request.tags["eval_pipeline/reason"] == "never evaluated"
        assert request.tags["eval_pipeline/provider"] == "fake"
        assert request.tags["eval_pipeline/runs_on"] == "inline"
        # The fake model holds no weights: no one-at-a-time local-model limit.
        assert "eval_pipeline/local_model" not in request.tags
        # The range run materializes both partitions, and the next tick finds them done.
        assert run_requested(project, instance, request).success
        assert evaluate(project, instance).run_requests == []


def test_due_partitions_are_batched_per_model_over_neighbouring_datasets():
    def due(*keys: str) -> list[DuePartition]:
        return [DuePartition(key=k, fingerprint=k[-1], reason="never evaluated") for k in keys]

    datasets = ["a", "b", "c", "d"]
    batches = batch_by_model(due("a|m", "b|m", "d|m", "a|n", "c|n", "b|n"), datasets)
    assert [[d.key for d in batch] for batch in batches] == [
        ["a|m", "b|m"],
        ["d|m"],
        ["a|n", "b|n", "c|n"],
    ]


def test_a_repeated_tick_for_the_same_night_asks_with_the_same_run_keys(project):
    night = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        first = sorted(r.run_key for r in evaluate(project, instance, night).run_requests)
        again = sorted(r.run_key for r in evaluate(project, instance, night).run_requests)
        assert first == again and len(set(first)) == 1
        assert all(k.startswith("nightly:2026-11-20:") for k in first)


def test_partitions_evaluated_with_unchanged_inputs_are_skipped_until_they_are_too_old(project):
    with dg.instance_for_test() as instance:
        for request in evaluate(project, instance).run_requests:
            assert run_requested(project, instance, request).success
        data = evaluate(project, instance)
        assert data.run_requests == [] and "all 2 partitions are up to date" in data.skip_message
        eight_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
        stale = evaluate(project, instance, eight_days).run_requests
        assert {r.tags["eval_pipeline/reason"] for r in stale} == {"last result older than 168h"}
        assert sum(len(covered(r)) for r in stale) == 2


def test_an_edited_prompt_makes_only_its_datasets_partitions_due(project):
    with dg.instance_for_test() as instance:
        for request in evaluate(project, instance).run_requests:
            run_requested(project, instance, request)
        prompt = project / "prompts" / "qa.jinja"
        prompt.write_text(prompt.read_text() + "\nAnswer briefly.\n")
        [request] = evaluate(project, instance).run_requests
        assert request.partition_key == "qa|fake-good"
        assert request.tags["eval_pipeline/reason"] == "inputs changed"


def test_an_edited_model_entry_makes_its_partitions_due_but_a_price_change_does_not(project):
    with dg.instance_for_test() as instance:
        for request in evaluate(project, instance).run_requests:
            run_requested(project, instance, request)
        models = project / "models.yaml"
        models.write_text(models.read_text() + "  pricing: {input_per_mtok: 3.0}\n")
        assert evaluate(project, instance).run_requests == []
        models.write_text(models.read_text() + "  revision: r2\n")
        due = evaluate(project, instance).run_requests
        assert {r.tags["eval_pipeline/reason"] for r in due} == {"inputs changed"}
        assert sum(len(covered(r)) for r in due) == 2


def test_a_partition_with_a_run_in_flight_is_not_requested_again(project):
    with dg.instance_for_test() as instance:
        defs = build_definitions(str(project), str(project / "store"))
        job = defs.resolve_job_def("regression_suite_job")
        instance.create_run_for_job(
            job, tags={"dagster/partition": "qa|fake-good"}, status=dg.DagsterRunStatus.STARTED
        )
        [request] = evaluate(project, instance).run_requests
        assert request.partition_key == "json-extract|fake-good"


def test_cron_timezone_and_age_come_from_the_environment(monkeypatch, project):
    monkeypatch.setenv("EVAL_PIPELINE_NIGHTLY_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("EVAL_PIPELINE_NIGHTLY_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("EVAL_PIPELINE_NIGHTLY_MAX_AGE_HOURS", "24")
    settings = NightlySettings.from_env()
    assert settings == NightlySettings(
        cron="30 3 * * 1-5", timezone="Europe/Berlin", max_age_hours=24
    )
    with dg.instance_for_test():
        defs = build_definitions(str(project), str(project / "store"))
        grid = defs.resolve_assets_def("aggregates").partitions_def
    [schedule] = build_schedules(grid, settings)
    assert schedule.cron_schedule == "30 3 * * 1-5"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "regression_suite_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("EVAL_PIPELINE_AUTOMATION", "on")
    [schedule] = build_schedules(grid, settings)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def _per_partition_history(instance, keys):
    """The schedule's lookups before they were batched: two queries per partition."""
    last, in_flight = {}, set()
    for key in keys:
        records = instance.get_run_records(
            dg.RunsFilter(
                job_name="regression_suite_job",
                tags={"dagster/partition": key},
                statuses=[dg.DagsterRunStatus.SUCCESS],
            ),
            limit=1,
        )
        if records:
            record = records[0]
            last[key] = LastResult(
                fingerprint=record.dagster_run.tags.get(INPUTS_TAG),
                finished_at=record.end_time or record.update_timestamp.timestamp(),
            )
        if instance.get_run_ids(
            dg.RunsFilter(
                job_name="regression_suite_job",
                tags={"dagster/partition": key},
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ],
            ),
            limit=1,
        ):
            in_flight.add(key)
    return last, in_flight


def test_batched_history_lookups_decide_exactly_as_one_query_per_partition_did():
    rng = random.Random(7)
    now = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC).timestamp()
    day = 86400.0
    keys = [f"ds{d}|m{m}" for d in range(6) for m in range(8)]
    current = {k: rng.choice(["fp-a", "fp-b"]) for k in keys}
    finished = [dg.DagsterRunStatus.SUCCESS] * 4 + [
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    ]
    busy = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED]
    history = []
    for created in sorted(now - rng.uniform(0.1, 30) * day for _ in range(300)):
        # Every partition but the last few gets a history of runs of every status,
        # started from a few hours to a month ago (some ran for days), some with older
        # inputs.
        history.append(
            SeedRun(
                key=rng.choice(keys[:-4]),
                # Runs of the last day may still be queued or running.
                status=rng.choice(finished + (busy if now - created < day else [])),
                created_at=created,
                updated_at=min(created + rng.choice([60, 3600, 2 * day]), now - 1),
                fingerprint=rng.choice(["fp-a", "fp-b", None]),
            )
        )
    # Runs of another job never count.
    history += [
        SeedRun(k, dg.DagsterRunStatus.SUCCESS, now - 1, "fp-a", job_name="ci_suite_job")
        for k in keys[-4:]
    ]
    reasons = set()
    with dg.instance_for_test() as instance:
        seed_runs(instance, history)
        for max_age_h in (24.0, 168.0, 24.0 * 60):
            max_age_s = max_age_h * 3600
            old_last, old_busy = _per_partition_history(instance, keys)
            new_last, new_busy = suite_history(instance, keys, window_start=now - max_age_s)
            assert new_last == old_last and new_busy == old_busy
            old = select_due(current, old_last, now=now, max_age_s=max_age_s, in_flight=old_busy)
            new = select_due(current, new_last, now=now, max_age_s=max_age_s, in_flight=new_busy)
            assert new == old
            reasons |= {d.reason.split(" than ")[0] for d in new}
            assert old_busy and len(new) < len(keys)
    assert reasons == {"never evaluated", "inputs changed", "last result older"}


def test_a_suite_run_failed_by_the_blocking_regression_check_counts_as_evaluated(project):
    # Its cells were evaluated; the hold is the reports' business. A run that failed
    # otherwise leaves its cell due.
    with dg.instance_for_test() as instance:
        defs = build_definitions(str(project), str(project / "store"))
        job = defs.resolve_job_def("regression_suite_job")
        keys = ["qa|fake-good", "json-extract|fake-good"]
        fingerprints = partition_fingerprints(load_catalog(project, load_rows=False), keys)
        for key, tags in zip(keys, ({HELD_TAG: HELD_TAG_VALUE}, {}), strict=True):
            instance.create_run_for_job(
                job,
                tags={"dagster/partition": key, INPUTS_TAG: fingerprints[key], **tags},
                status=dg.DagsterRunStatus.FAILURE,
            )
        [request] = evaluate(project, instance).run_requests
        assert request.partition_key == "json-extract|fake-good"
