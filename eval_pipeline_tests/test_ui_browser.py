"""The Dagster UI in headless Chromium, against the webserver and daemon of ``make ui``.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
scripts/ensure-chromium.sh); it never downloads a browser. Screenshots land in
``.test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from eval_pipeline.defs import build_definitions
from eval_pipeline_tests import processes
from eval_pipeline_tests.chromium import SHOTS, launched, need_chromium
from eval_pipeline_tests.opsupport import (
    ONE_MODEL,
    free_port,
    run_suite,
    stop_group,
    wait_for_webserver,
)
from eval_pipeline_tests.projects import REPO, make_project

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
_DISMISSED: list[bool] = []


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[dict]:
    """``scripts/ui.sh`` (daemon + webserver) over a fake project with one materialized partition."""
    need_chromium()
    tmp = tmp_path_factory.mktemp("ui")
    project = make_project(tmp / "project", ONE_MODEL, datasets=("qa", "json-extract"))
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(tmp / "store"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
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


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
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
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
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
            runs = [r for r in instance.get_run_records() if r.dagster_run.run_id not in before]
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
