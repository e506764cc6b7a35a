"""The Dagster UI in headless Chromium, against the webserver and daemon of ``make ui``.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
scripts/ensure-chromium.sh); it never downloads a browser. Screenshots land in
``.test-artifacts/screenshots/``.

The project has a fake model and two API models on the batch route (OpenAI and Anthropic,
served by the local test server), so the batch route runs end to end under the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import dagster as dg
import pytest

from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.jobs import BATCH_WAIT_TAG, ROUTE_TAG, SAMPLE_LIMIT_TAG
from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver import ApiServer, api_model
from eval_pipeline_tests.batch_helpers import KEY_ENV
from eval_pipeline_tests.chromium import SHOTS, launched, need_chromium
from eval_pipeline_tests.opsupport import (
    ONE_MODEL,
    free_port,
    graphql,
    run_suite,
    stop_group,
    wait_for_webserver,
)
from eval_pipeline_tests.projects import REPO, make_project

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASSETS = [
    "prompt_versions",
    "dataset_samples",
    "generations",
    "scores",
    "aggregates",
    "leaderboard",
]
SEEDED = "qa|fake-good"
T = TypeVar("T")
_DISMISSED: list[bool] = []


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``scripts/ui.sh`` (daemon + webserver) over a project with one materialized partition."""
    need_chromium()
    with ApiServer() as api:
        yield from _served(tmp_path_factory.mktemp("ui"), api)


def _served(tmp: Path, api: ApiServer) -> Iterator[dict]:
    # Batches stay open until the batch test lets them end.
    api.configure_batches(complete_after_s=3600)
    batch_models = [
        {**api_model(slug, provider, url, api_key_env=KEY_ENV), "route": "batch"}
        for slug, provider, url in (
            ("oa", "openai", api.openai_base_url),
            ("an", "anthropic", api.url),
        )
    ]
    models = {"models": [*ONE_MODEL["models"], *batch_models]}
    project = make_project(tmp / "project", models, datasets=("qa", "json-extract"))
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(tmp / "store"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        KEY_ENV: "sk-test-key",
    }
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert run_suite(project, tmp / "store", SEEDED, instance).success
    port = free_port()
    log = open(tmp / "ui.log", "w")  # noqa: SIM115 (closed below)
    proc = processes.start(
        ["bash", str(REPO / "scripts" / "ui.sh")],
        cwd=REPO,
        env={**env, "UI_PORT": str(port), "BIN": str(Path(os.sys.executable).parent)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(proc, url, tmp / "ui.log")
        yield {
            "url": url,
            "home": home,
            "log": tmp / "ui.log",
            "project": str(project),
            "store": str(tmp / "store"),
            "tmp": tmp,
            "api": api,
        }
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with launched() as browser:
        yield browser


@pytest.fixture
def page(browser, ui):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(ui["url"] + "/")
    if not _DISMISSED:
        # A browser's first visit opens "Join the Dagster community" over the page; the
        # answer is kept in the profile, so later pages of this browser do not show it.
        page.get_by_role("button", name="Skip").click(timeout=30_000)
        _DISMISSED.append(True)
    yield page
    page.close()


def _shot(page: Page, name: str, keep_in: Path | None = None) -> Path:
    """A full-page screenshot in ``SHOTS``; with ``keep_in``, written there and copied."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = (keep_in or SHOTS) / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if keep_in is not None:
        shutil.copy(path, SHOTS / path.name)
    return path


def test_the_asset_graph_shows_every_asset(page, ui):
    # Every asset the definitions hold, read from the same project the webserver loads.
    defs = build_definitions(ui["project"], ui["store"])
    names = sorted(key.to_user_string() for key in defs.resolve_all_asset_keys())
    groups = sorted({spec.group_name for spec in defs.resolve_all_asset_specs()})
    assert set(ASSETS) <= set(names)

    # The global graph page: each group of its sidebar tree expands to the group's assets.
    # Expanded bottom-up, so the rows still to click do not move.
    page.goto(ui["url"] + "/asset-groups")
    for group in reversed(groups):
        row = page.get_by_text(group, exact=True).first
        box = row.bounding_box()
        page.mouse.click(box["x"] - 38, box["y"] + box["height"] / 2)  # the row's caret
    for name in names:
        # A prefixed key (versions/dataset) is listed by its last part under its prefix.
        page.get_by_text(name.split("/")[-1], exact=True).first.wait_for(state="visible")
    _shot(page, "asset-graph-global")

    # The lineage around aggregates draws the pipeline's chain as graph nodes.
    page.goto(ui["url"] + "/assets/aggregates?view=lineage&lineageScope=neighbors&lineageDepth=5")
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    _shot(page, "asset-graph")


def test_a_partition_of_aggregates_shows_its_metadata(page, ui):
    page.goto(ui["url"] + "/assets/aggregates?view=partitions&partition=qa%7Cfake-good")
    for label in ["prompt_version", "samples", "cost_usd", "answer_match/mean", "cache_hit_rate"]:
        page.get_by_text(label, exact=True).first.wait_for(state="visible")
    page.get_by_text("regression_suite_job").first.wait_for(state="visible")
    _shot(page, "aggregates-partition")


def test_a_materialization_launched_from_the_ui_succeeds(page, ui):
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui["home"]))) as instance:
        before = {r.dagster_run.run_id for r in instance.get_run_records()}
    page.goto(ui["url"] + "/assets/aggregates?view=partitions&partition=qa%7Cfake-good")
    page.get_by_role("button", name="Materialize…").first.click()
    page.get_by_text("Launch runs to materialize aggregates").wait_for(state="visible")
    _shot(page, "launch-dialog")
    page.get_by_role("button", name="Launch 1 run").click()

    # The run is queued by the webserver, started by the daemon, and run in its own process.
    deadline = time.monotonic() + 180
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui["home"]))) as instance:
        while True:
            runs = [
                r
                for r in instance.get_run_records()
                if r.dagster_run.run_id not in before and ROUTE_TAG not in r.dagster_run.tags
            ]
            done = [r for r in runs if r.dagster_run.is_finished]
            if done:
                break
            assert time.monotonic() < deadline, ui["log"].read_text()[-3000:]
            time.sleep(1)
        [run] = runs
        assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS, ui["log"].read_text()[-3000:]
        assert run.dagster_run.tags["dagster/partition"] == SEEDED
        events = instance.fetch_materializations(dg.AssetKey("aggregates"), limit=1).records
        assert events[0].run_id == run.dagster_run.run_id
    page.goto(f"{ui['url']}/runs/{run.dagster_run.run_id}")
    page.get_by_text("Success").first.wait_for(state="visible")
    _shot(page, "ui-launched-run")


def test_a_partition_of_aggregates_shows_its_check_results(page: Page, ui: dict) -> None:
    # The seeded run executed the per-partition checks of aggregates along with it.
    checks = ["aggregates_calibration", "aggregates_sandbox"]
    # The asset's checks tab: each check's latest result, on the partition it checked.
    page.goto(ui["url"] + "/assets/aggregates?view=checks")
    for name in checks:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    page.get_by_text("aggregates_calibration", exact=True).first.click()
    page.get_by_text(SEEDED, exact=True).first.wait_for(state="visible")
    # Its partitions: the seeded cell passed, the others have no result yet.
    page.get_by_text("Partitions", exact=True).last.click()
    page.get_by_text("Passed (1)", exact=True).wait_for(state="visible")
    page.get_by_text("Missing (5)", exact=True).wait_for(state="visible")
    # (each name is also drawn hidden, to measure its width)
    page.locator('text="qa" >> visible=true').first.click()
    page.locator('text="fake-good" >> visible=true').first.click()
    page.get_by_text("no judge metrics").first.wait_for(state="visible")
    shot = _shot(page, "aggregates-partition-checks", keep_in=ui["tmp"])
    assert shot.exists() and (SHOTS / shot.name).exists()


REPOSITORY = {"repositoryLocationName": "eval_pipeline", "repositoryName": "__repository__"}
START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""
LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def _launch_batch_run(url: str, partition: str) -> str:
    """Launch evaluation_job for ``partition`` through the webserver, on the batch route."""
    dataset, model = partition.split("|")
    tags = {
        ROUTE_TAG: "batch",
        BATCH_WAIT_TAG: "sensor",
        SAMPLE_LIMIT_TAG: "3",
        "dagster/partition": partition,
        "dagster/partition/dataset": dataset,
        "dagster/partition/model": model,
    }
    params = {
        "selector": {**REPOSITORY, "jobName": "evaluation_job"},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        "runConfigData": {},
    }
    launched = graphql(url, LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _wait_for(ui: dict, what: str, done: Callable[[dg.DagsterInstance], T]) -> T:
    """Poll the UI's instance until ``done`` returns something truthy (3 minutes at most)."""
    from dagster._core.instance.ref import InstanceRef

    deadline = time.monotonic() + 180
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui["home"]))) as instance:
        while not (found := done(instance)):
            assert time.monotonic() < deadline, f"no {what}:\n" + ui["log"].read_text()[-3000:]
            time.sleep(1)
    return found


def _observations(instance: dg.DagsterInstance, partition: str) -> list[dg.AssetObservation]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("generations"), asset_partitions=[partition]),
        limit=10,
    ).records
    return [r.asset_observation for r in records if r.asset_observation is not None]


def test_batch_runs_end_and_the_daemon_sensor_collects_them(page: Page, ui: dict) -> None:
    api: ApiServer = ui["api"]
    partitions = {"qa|oa": "openai", "qa|an": "anthropic"}
    submitting = {p: _launch_batch_run(ui["url"], p) for p in partitions}

    # Each submitting run sends its partition's batch and ends: pending, nothing written.
    def ended(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
        runs = [instance.get_run_by_id(run_id) for run_id in submitting.values()]
        finished = [r for r in runs if r is not None and r.is_finished]
        return finished if len(finished) == len(runs) else []

    for run in _wait_for(ui, "ended submitting runs", ended):
        assert run.status == dg.DagsterRunStatus.FAILURE, ui["log"].read_text()[-3000:]
    batches = {b["flavour"]: b for b in api.batches()}
    assert sorted(batches) == ["anthropic", "openai"] and len(api.batches()) == 2

    # The operator switches the collecting sensor on; its first look records each open batch.
    selector = {**REPOSITORY, "sensorName": "batch_collect_sensor"}
    started = graphql(ui["url"], START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    for partition, flavour in partitions.items():

        def observed(instance: dg.DagsterInstance, p: str = partition) -> list[dg.AssetObservation]:
            return _observations(instance, p)

        [seen, *_] = _wait_for(ui, f"observation of {partition}", observed)
        assert seen.metadata["batch/provider"].value == flavour
        assert seen.metadata["batch/id"].value == batches[flavour]["id"]
        assert seen.metadata["batch/status"].value == "in_progress"

    # The UI shows the open batch on the partition of generations.
    # The UI shows the open batch in the events of the partition of generations.
    page.goto(ui["url"] + "/assets/generations?view=events&partition=qa%7Coa")
    page.get_by_text("Partition qa|oa observed").first.wait_for(state="visible")
    for text in ["batch/provider", "openai", batches["openai"]["id"], "in_progress"]:
        page.get_by_text(text, exact=True).first.wait_for(state="visible")
    shot = _shot(page, "generations-open-batch", keep_in=ui["tmp"])
    assert shot.exists() and (SHOTS / shot.name).exists()

    # The provider ends the batches; the sensor's next look requests the collecting runs,
    # which materialize the partitions from the batches' answers.
    api.configure_batches(complete_after_s=0)

    def collected(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
        runs = [
            r.dagster_run
            for r in instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/sensor_name": "batch_collect_sensor"})
            )
        ]
        finished = [r for r in runs if r.is_finished]
        return finished if len(finished) == len(partitions) else []

    runs = _wait_for(ui, "collecting runs", collected)
    assert {r.tags["dagster/partition"] for r in runs} == set(partitions)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), ui["log"].read_text()[-3000:]
    assert len(api.batches()) == 2 and api.stats()["requests"] == 0  # nothing sent again
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui["home"]))) as instance:
        for partition, flavour in partitions.items():
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("generations"), asset_partitions=[partition]
                ),
                limit=1,
            ).records
            assert records and records[0].asset_materialization is not None
            metadata = records[0].asset_materialization.metadata
            assert metadata["route"].value == "batch"
            assert metadata["batch/ids"].value == batches[flavour]["id"]
