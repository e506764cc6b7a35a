"""The sensors, ticked with ``build_sensor_context`` against a real instance.

Alerts go to a webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.sensors import AGGREGATES, EVENT_KEY
from eval_pipeline.resources import CatalogResource
from eval_pipeline.resources.webserver import WebserverResource
from eval_pipeline_tests.opsupport import (
    ONE_MODEL,
    RELOADED,
    alerts_to,
    free_port,
    no_dangling_defs_state,
    receiver,
    run_suite,
)
from eval_pipeline_tests.projects import FAKE_MODELS, make_project

PARTITION = "qa|fake-good"


@pytest.fixture
def one_model(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", ONE_MODEL, datasets=("qa",))


def _defs(project: Path) -> dg.Definitions:
    return build_definitions(str(project), str(project / "store"))


def _sensor(project: Path, name: str) -> dg.SensorDefinition:
    with no_dangling_defs_state():
        return _defs(project).resolve_sensor_def(name)


def tick(sensor: dg.SensorDefinition, instance, cursor: str | None, definitions=None, **resources):
    """One evaluation, as the daemon runs it; returns (data, the cursor it leaves)."""
    with no_dangling_defs_state():
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=definitions
        )
        data = sensor.evaluate_tick(context)
    return data, data.cursor if data.cursor is not None else cursor


def regression_ticks(project, instance, url, cursor=None, attempts=3):
    sensor = _sensor(project, "regression_sensor")
    return tick(sensor, instance, cursor, alerts=alerts_to(url, attempts))


def recorded_events(instance: dg.DagsterInstance) -> list[dict]:
    records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=AGGREGATES), limit=100)
    return [
        {k: v.value for k, v in r.asset_observation.metadata.items()}
        for r in records.records
        if EVENT_KEY in r.asset_observation.metadata
    ]


def test_a_failed_regression_check_records_the_event_and_posts_one_slack_alert(one_model):
    with dg.instance_for_test() as instance, receiver() as hook:
        _, cursor = regression_ticks(one_model, instance, hook.url)  # first tick: start point
        result = run_suite(one_model, one_model / "store", PARTITION, instance, regression=False)
        assert result.success  # the check is not blocking: the run still succeeds
        data, cursor = regression_ticks(one_model, instance, hook.url, cursor)

        assert hook.requests == 1
        body = hook.bodies[0]
        assert "Regression" in body["text"] and body["blocks"][0]["type"] == "section"
        [event] = hook.events
        assert (event["model"], event["dataset"], event["metric"]) == (
            "fake-good",
            "qa",
            "answer_match",
        )
        assert event["delta"] == pytest.approx(-0.2) and event["p_value"] == pytest.approx(0.004)
        assert event["run_url"] == f"http://ui.test/runs/{result.run_id}"
        assert event["baseline"] == "pinned-test"
        [recorded] = recorded_events(instance)
        assert recorded["regression/metric"] == "answer_match"
        assert recorded["regression/run"] == event["run_url"]
        assert recorded["regression/alert"].startswith("posted")
        assert "1 regression event(s) recorded" in data.skip_message


def test_a_restarted_sensor_does_not_alert_twice_even_without_its_cursor(one_model):
    with dg.instance_for_test() as instance, receiver() as hook:
        _, cursor = regression_ticks(one_model, instance, hook.url)
        run_suite(one_model, one_model / "store", PARTITION, instance, regression=False)
        _, cursor = regression_ticks(one_model, instance, hook.url, cursor)
        # A new daemon process: a fresh definitions load, the cursor from the instance.
        data, cursor = regression_ticks(one_model, instance, hook.url, cursor)
        assert data.skip_message == "no new regressions"
        # A cursor reset to the beginning finds the recorded event and stays quiet.
        data, _ = regression_ticks(one_model, instance, hook.url, json.dumps({"after": -1}))
        assert hook.requests == 1
        assert len(recorded_events(instance)) == 1


def test_a_passing_regression_check_alerts_nothing(one_model):
    with dg.instance_for_test() as instance, receiver() as hook:
        _, cursor = regression_ticks(one_model, instance, hook.url)
        run_suite(one_model, one_model / "store", PARTITION, instance, regression=True)
        data, _ = regression_ticks(one_model, instance, hook.url, cursor)
        assert hook.requests == 0 and data.skip_message == "no new regressions"


def test_the_alert_is_retried_when_the_webhook_answers_503_and_delivered_once(one_model):
    with dg.instance_for_test() as instance, receiver(statuses=[503, 503]) as hook:
        _, cursor = regression_ticks(one_model, instance, hook.url)
        run_suite(one_model, one_model / "store", PARTITION, instance, regression=False)
        regression_ticks(one_model, instance, hook.url, cursor, attempts=3)
        assert hook.requests == 3 and len(hook.bodies) == 1


def test_an_alert_the_webhook_keeps_refusing_waits_in_the_cursor_for_the_next_tick(one_model):
    with dg.instance_for_test() as instance, receiver(statuses=[500, 500]) as hook:
        _, cursor = regression_ticks(one_model, instance, hook.url)
        run_suite(one_model, one_model / "store", PARTITION, instance, regression=False)
        data, cursor = regression_ticks(one_model, instance, hook.url, cursor, attempts=2)
        assert hook.bodies == [] and "1 pending" in data.skip_message
        assert len(json.loads(cursor)["pending"]) == 1 and recorded_events(instance) == []
        data, cursor = regression_ticks(one_model, instance, hook.url, cursor, attempts=2)
        assert len(hook.bodies) == 1 and json.loads(cursor)["pending"] == []
        regression_ticks(one_model, instance, hook.url, cursor)
        assert len(hook.bodies) == 1


def test_without_a_webhook_the_event_is_still_recorded(one_model):
    with dg.instance_for_test() as instance:
        _, cursor = regression_ticks(one_model, instance, None)
        run_suite(one_model, one_model / "store", PARTITION, instance, regression=False)
        regression_ticks(one_model, instance, None, cursor)
        [recorded] = recorded_events(instance)
        assert recorded["regression/alert"] == "not configured"


def _catalog_tick(project: Path, instance, cursor, url: str, defs=None):
    """A tick of ``catalog_sensor``; fresh definitions unless ``defs`` (a stale daemon)."""
    defs = defs or _defs(project)
    sensor = defs.resolve_sensor_def("catalog_sensor")
    return tick(
        sensor,
        instance,
        cursor,
        defs,
        catalog=CatalogResource(root=str(project)),
        webserver=WebserverResource(url=url, timeout_s=10),
    )


def _base(hook) -> str:
    return hook.url.removesuffix("/hook")


def test_a_new_model_reloads_the_webserver_once_and_is_requested_once_definitions_reload(
    tmp_path,
):
    project = make_project(tmp_path / "project", ONE_MODEL, datasets=("qa", "json-extract"))
    with dg.instance_for_test() as instance, receiver(reply=RELOADED) as web:
        before = _defs(project)
        data, cursor = _catalog_tick(project, instance, None, _base(web), before)
        assert data.run_requests == [] and "recorded 1 models and 2 datasets" in data.skip_message
        data, cursor = _catalog_tick(project, instance, cursor, _base(web), before)
        assert data.run_requests == [] and web.requests == 0

        (project / "models.yaml").write_text(yaml.safe_dump(FAKE_MODELS, sort_keys=False))
        # The sensor's definitions still hold the old grid: it asks the webserver to reload
        # the code location and waits for its own definitions to follow.
        data, cursor = _catalog_tick(project, instance, cursor, _base(web), before)
        assert data.run_requests == []
        assert "1 model(s)/dataset(s) added, 0 removed" in data.skip_message
        assert "reloaded code location eval_pipeline" in data.skip_message
        assert "2 new partition(s) such as json-extract|fake-echo" in data.skip_message
        [body] = web.bodies
        assert "reloadRepositoryLocation" in body["query"]
        assert body["variables"] == {"repositoryLocationName": "eval_pipeline"}
        # Still the old definitions on the next tick: no second reload for the same change.
        data, cursor = _catalog_tick(project, instance, cursor, _base(web), before)
        assert data.run_requests == [] and web.requests == 1
        assert "not in this sensor's definitions yet" in data.skip_message

        data, cursor = _catalog_tick(project, instance, cursor, _base(web))  # after the reload
        # The new model's two datasets in one run over both (one model load).
        [request] = data.run_requests
        assert sorted(json.loads(request.tags["eval_pipeline/inputs"])) == [
            "json-extract|fake-echo",
            "qa|fake-echo",
        ]
        assert request.tags["dagster/asset_partition_range_start"] == "json-extract|fake-echo"
        assert request.tags["dagster/asset_partition_range_end"] == "qa|fake-echo"
        assert request.tags["eval_pipeline/provider"] == "fake"
        assert request.tags["eval_pipeline/reason"] == "added to the catalog"
        assert request.run_key.startswith("catalog:")
        data, cursor = _catalog_tick(project, instance, cursor, _base(web))
        assert data.run_requests == [] and web.requests == 1


def test_a_sensor_whose_definitions_already_reloaded_still_reloads_the_webserver(tmp_path):
    # A daemon that manages its own code server reloads it every minute, so its grid can
    # be ahead of the webserver's: the UI is reloaded all the same.
    project = make_project(tmp_path / "project", ONE_MODEL, datasets=("qa",))
    with dg.instance_for_test() as instance, receiver(reply=RELOADED) as web:
        _, cursor = _catalog_tick(project, instance, None, _base(web))
        (project / "models.yaml").write_text(yaml.safe_dump(FAKE_MODELS, sort_keys=False))
        data, cursor = _catalog_tick(project, instance, cursor, _base(web))
        assert [r.partition_key for r in data.run_requests] == ["qa|fake-echo"]
        assert web.requests == 1


def test_without_a_webserver_the_tick_says_how_to_reload_by_hand_and_does_not_retry(tmp_path):
    project = make_project(tmp_path / "project", ONE_MODEL, datasets=("qa",))
    nobody = f"http://127.0.0.1:{free_port()}"
    with dg.instance_for_test() as instance:
        before = _defs(project)
        _, cursor = _catalog_tick(project, instance, None, nobody, before)
        (project / "models.yaml").write_text(yaml.safe_dump(FAKE_MODELS, sort_keys=False))
        data, cursor = _catalog_tick(project, instance, cursor, nobody, before)
        assert data.run_requests == []
        message = data.skip_message
        assert f"could not ask the webserver at {nobody} to reload code location" in message
        assert "Reload" in message and "EVAL_PIPELINE_UI_URL" in message
        assert "qa|fake-echo" in message
        with receiver(reply=RELOADED) as web:
            # The webserver that comes up later loads the new catalog itself: no retry.
            data, cursor = _catalog_tick(project, instance, cursor, _base(web), before)
            assert web.requests == 0 and "could not" not in data.skip_message
            data, _ = _catalog_tick(project, instance, cursor, _base(web))
            assert [r.partition_key for r in data.run_requests] == ["qa|fake-echo"]


def test_a_removed_model_reloads_the_webserver_once_and_requests_nothing(tmp_path):
    project = make_project(tmp_path / "project", FAKE_MODELS, datasets=("qa",))
    with dg.instance_for_test() as instance, receiver(reply=RELOADED) as web:
        _, cursor = _catalog_tick(project, instance, None, _base(web))
        (project / "models.yaml").write_text(yaml.safe_dump(ONE_MODEL, sort_keys=False))
        data, cursor = _catalog_tick(project, instance, cursor, _base(web))
        assert data.run_requests == [] and web.requests == 1
        assert "0 model(s)/dataset(s) added, 1 removed" in data.skip_message
        assert json.loads(cursor)["models"] == ["fake-good"]
        data, _ = _catalog_tick(project, instance, cursor, _base(web))
        assert data.skip_message == "no new models or datasets" and web.requests == 1


def test_the_catalog_sensor_requests_a_new_dataset_for_every_model_not_yet_evaluated(tmp_path):
    project = make_project(tmp_path / "project", FAKE_MODELS, datasets=("qa",))
    with dg.instance_for_test() as instance, receiver(reply=RELOADED) as web:
        _, cursor = _catalog_tick(project, instance, None, _base(web))
        make_project(tmp_path / "project2", FAKE_MODELS, datasets=("json-extract",))
        (tmp_path / "project2" / "datasets" / "json-extract").rename(
            project / "datasets" / "json-extract"
        )
        # One of the new partitions was already evaluated by hand: it is not requested.
        run_suite(
            project, project / "store", "json-extract|fake-good", instance, job="evaluation_job"
        )
        data, cursor = _catalog_tick(project, instance, cursor, _base(web))
        assert [r.partition_key for r in data.run_requests] == ["json-extract|fake-echo"]


def test_the_run_failure_sensor_alerts_with_the_failing_step_and_its_error(tmp_path):
    models = {"models": [{**ONE_MODEL["models"][0], "options": {"fail_samples": ["qa-0002"]}}]}
    project = make_project(tmp_path / "project", models, datasets=("qa",))
    sensor = _sensor(project, "run_failure_sensor")
    with dg.instance_for_test() as instance, receiver() as hook:
        data, cursor = tick(sensor, instance, None, alerts=alerts_to(hook.url))
        assert "Initiating" in data.skip_message
        result = run_suite(project, project / "store", PARTITION, instance)
        assert not result.success
        data, cursor = tick(sensor, instance, cursor, alerts=alerts_to(hook.url))
        [body] = hook.bodies
        alert = body["eval_pipeline"]
        assert alert["kind"] == "run_failure" and alert["run_id"] == result.run_id
        assert alert["partition"] == PARTITION and alert["job_name"] == "regression_suite_job"
        [failure] = alert["failures"]
        assert "generations_complete" in failure["step"]
        assert failure["error"]
        assert PARTITION in body["text"]
        # Restarted with the stored cursor: the same failure is not alerted again.
        tick(sensor, instance, cursor, alerts=alerts_to(hook.url))
        assert len(hook.bodies) == 1


def test_the_reporting_sensor_reports_once_after_evaluations_finish_and_not_while_one_runs(
    one_model,
):
    sensor = _sensor(one_model, "reporting_sensor")
    with dg.instance_for_test() as instance:
        data, cursor = tick(sensor, instance, None)
        assert data.run_requests == [] and "up to date" in data.skip_message
        for partition in (PARTITION, "json-extract|fake-good"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(AGGREGATES, partition=partition)
            )
        # A suite run still in flight: the report waits for it.
        job = _defs(one_model).resolve_job_def("regression_suite_job")
        busy = instance.create_run_for_job(
            job, tags={"dagster/partition": PARTITION}, status=dg.DagsterRunStatus.STARTED
        )
        data, cursor = tick(sensor, instance, cursor)
        assert data.run_requests == [] and "regression_suite_job" in data.skip_message
        instance.report_run_failed(busy)
        data, cursor = tick(sensor, instance, cursor)
        [request] = data.run_requests
        assert sensor.job_name == "reporting_job" and request.run_key.startswith("reporting:")
        data, cursor = tick(sensor, instance, cursor)
        assert data.run_requests == [] and "up to date" in data.skip_message
        instance.report_runless_asset_event(
            dg.AssetMaterialization(AGGREGATES, partition=PARTITION)
        )
        [again] = tick(sensor, instance, cursor)[0].run_requests
        assert again.run_key != request.run_key


def test_a_reload_the_webserver_refuses_is_reported_with_its_reason():
    not_found = {
        "data": {
            "reloadRepositoryLocation": {
                "__typename": "RepositoryLocationNotFound",
                "message": "Location elsewhere does not exist",
            }
        }
    }
    with receiver(reply=not_found) as web:
        result = WebserverResource(url=_base(web)).reload_location("elsewhere")
    assert not result.ok
    assert result.error == "RepositoryLocationNotFound: Location elsewhere does not exist"
    with receiver(statuses=[500]) as web:
        result = WebserverResource(url=_base(web)).reload_location("eval_pipeline")
    assert not result.ok and "500" in result.error
