"""A catalog kept live: models added and removed while the webserver runs.

The grid is static (read from the catalog when the definitions load); ``catalog_sensor``
asks the webserver to reload the code location when the catalog changes. A removed
model's partitions leave the grid; its history stays in the store and the instance.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import yaml
from dagster._core.instance.ref import InstanceRef

from eval_pipeline.cli import main as cli
from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.sensors import AGGREGATES
from eval_pipeline.resources import CatalogResource
from eval_pipeline.resources.webserver import WebserverResource
from eval_pipeline_tests.opsupport import (
    graphql,
    no_dangling_defs_state,
    run_suite,
    webserver,
)
from eval_pipeline_tests.projects import FAKE_MODELS, REPO, make_project

GOOD, ECHO = FAKE_MODELS["models"]
NEW = {**GOOD, "slug": "fake-new", "model_id": "fake/new"}

PARTITIONS = """
query ($partitions: [String!]) {
  assetNodeOrError(assetKey: {path: ["generations"]}) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
  assetOrError(assetKey: {path: ["aggregates"]}) {
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
}
"""

DRY_RUN = """
mutation ($cursor: String) {
  sensorDryRun(
    selectorData: {
      repositoryName: "__repository__",
      repositoryLocationName: "eval_pipeline",
      sensorName: "catalog_sensor"
    },
    cursor: $cursor
  ) {
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests { runKey tags { key value } }
        skipReason
        cursor
        error { message }
      }
    }
    ... on PythonError { message }
  }
}
"""


def _write_models(project: Path, *models: dict) -> None:
    (project / "models.yaml").write_text(yaml.safe_dump({"models": list(models)}))


def _catalog_tick(defs: dg.Definitions, project: Path, instance, cursor, url: str):
    """A tick of ``catalog_sensor`` with ``defs`` loaded (as the daemon holds them)."""
    with no_dangling_defs_state():
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            definitions=defs,
            resources={
                "catalog": CatalogResource(root=str(project)),
                "webserver": WebserverResource(url=url, timeout_s=120),
            },
        )
        data = defs.resolve_sensor_def("catalog_sensor").evaluate_tick(context)
    return data, data.cursor if data.cursor is not None else cursor


def _grid(url: str, partitions: list[str]) -> tuple[dict, list[dict]]:
    data = graphql(url, PARTITIONS, {"partitions": partitions})
    node = data["assetNodeOrError"]
    dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
    return {**dims, "stats": node["partitionStats"]}, data["assetOrError"]["assetMaterializations"]


def test_a_model_added_while_the_webserver_runs_is_served_after_one_sensor_tick(tmp_path):
    project = make_project(tmp_path / "project", {"models": [GOOD, ECHO]}, datasets=("qa",))
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        # The model about to leave the catalog has a history.
        assert run_suite(project, project / "store", "qa|fake-echo", instance).success
        before = build_definitions(str(project), str(project / "store"))
        with webserver(home, project, tmp_path / "webserver.log") as url:
            grid, _ = _grid(url, [])
            assert sorted(grid["model"]) == ["fake-echo", "fake-good"]
            _, cursor = _catalog_tick(before, project, instance, None, url)

            _write_models(project, GOOD, NEW)
            # The tick runs with the definitions loaded before the change (a daemon whose
            # code server has not reloaded yet); the webserver is the one it reloads.
            data, cursor = _catalog_tick(before, project, instance, cursor, url)
            assert data.run_requests == []
            assert "reloaded code location eval_pipeline" in data.skip_message, data.skip_message

            grid, echo_history = _grid(url, ["qa|fake-echo"])
            assert sorted(grid["model"]) == ["fake-good", "fake-new"] and grid["dataset"] == ["qa"]
            # The removed model's materializations stay in the instance and are still
            # served, under a partition the definitions no longer have.
            assert {m["partition"] for m in echo_history} == {"qa|fake-echo"}
            # The partition counts cover the current grid only.
            assert grid["stats"]["numPartitions"] == 2
            assert grid["stats"]["numMaterialized"] == 0

            # The next tick, evaluated by the webserver's reloaded code server, requests
            # the new model's partition (and asks for no second reload).
            tick = graphql(url, DRY_RUN, {"cursor": cursor})["sensorDryRun"]
            result = tick["evaluationResult"]
            assert result["error"] is None, result["error"]
            [request] = result["runRequests"]
            tags = {t["key"]: t["value"] for t in request["tags"]}
            assert tags["dagster/partition"] == "qa|fake-new"
            assert tags["eval_pipeline/reason"] == "added to the catalog"
            assert "reloaded" not in (result["skipReason"] or "")
            assert json.loads(result["cursor"])["models"] == ["fake-good", "fake-new"]


def _suite(project: Path, store: Path, partition: str, instance) -> None:
    assert run_suite(project, store, partition, instance).success


def test_a_removed_models_history_stays_readable_and_nothing_downstream_trips_on_it(
    tmp_path, capsys
):
    project = make_project(tmp_path / "project", {"models": [GOOD, ECHO]}, datasets=("qa",))
    store = project / "store"
    with dg.instance_for_test() as instance:
        _suite(project, store, "qa|fake-good", instance)
        _suite(project, store, "qa|fake-echo", instance)
        _write_models(project, GOOD)
        with no_dangling_defs_state():
            defs = build_definitions(str(project), str(store))
        grid = defs.resolve_assets_def("aggregates").partitions_def
        assert [str(k) for k in grid.get_partition_keys()] == ["qa|fake-good"]
        # The instance keeps the removed partition's materializations.
        assert "qa|fake-echo" in instance.get_materialized_partitions(AGGREGATES)

        # The nightly schedule and the sensors tick on the new grid without error.
        with no_dangling_defs_state():
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=dt.datetime.now(dt.UTC),
                resources={"catalog": CatalogResource(root=str(project))},
                repository_def=defs.get_repository_def(),
            )
            nightly = defs.resolve_schedule_def("nightly_regression_suite_schedule").evaluate_tick(
                context
            )
        assert "qa|fake-echo" not in [r.partition_key for r in nightly.run_requests or []]
        ticks = {}
        for name in ("regression_sensor", "reporting_sensor"):
            with no_dangling_defs_state():
                with dg.build_sensor_context(
                    instance=instance, definitions=defs, resources=dict(defs.resources)
                ) as ctx:
                    ticks[name] = defs.resolve_sensor_def(name).evaluate_tick(ctx)
        assert "check result(s)" in ticks["regression_sensor"].skip_message
        assert len(ticks["reporting_sensor"].run_requests) == 1

        # The reporting job (leaderboard, reports) runs; the leaderboard lists the catalog's
        # models only.
        with no_dangling_defs_state():
            report = defs.resolve_job_def("reporting_job").execute_in_process(instance=instance)
        assert report.success
        board = pl.read_parquet(next((store / "leaderboard").rglob("*.parquet")))
        assert board["model"].unique().to_list() == ["fake-good"]

    # The stored rows stay: the CLI still reads the removed model's results and history
    # and compares its runs.
    args = ["--root", str(project), "--store", str(store)]
    capsys.readouterr()
    assert cli([*args, "results", "--model", "fake-echo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["model"] for r in rows} == {"fake-echo"}
    assert cli([*args, "history", "--model", "fake-echo", "--dataset", "qa", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert cli([*args, "compare", "latest", "latest", "--model", "fake-echo", "--json"]) == 0
    assert "fake-echo" in capsys.readouterr().out
