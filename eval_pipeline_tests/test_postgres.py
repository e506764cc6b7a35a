"""The production instance (deploy/dagster.yaml) against the local PostgreSQL server.

Each test module gets its own database, so concurrent test runs on one server do not see
each other's runs. ``scripts/test.sh`` starts the server (scripts/postgres.sh) and sets
``EVAL_PIPELINE_REQUIRE_SERVICES=1``, which turns a missing server into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest

from eval_pipeline.defs.run_queue import CatalogQueuedRunCoordinator
from eval_pipeline_tests import processes
from eval_pipeline_tests.opsupport import ONE_MODEL, alerts_to, free_port, receiver, run_suite
from eval_pipeline_tests.projects import REPO, make_project

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent
PG = {
    "DAGSTER_PG_HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "DAGSTER_PG_PORT": os.environ.get("PGPORT", "5432"),
    "DAGSTER_PG_USER": os.environ.get("PGUSER", "postgres"),
    "DAGSTER_PG_PASSWORD": os.environ.get("PGPASSWORD", ""),
}
PARTITION = "qa|fake-good"


def _connect(db: str):
    import psycopg2

    conn = psycopg2.connect(
        host=PG["DAGSTER_PG_HOST"],
        port=int(PG["DAGSTER_PG_PORT"]),
        user=PG["DAGSTER_PG_USER"],
        password=PG["DAGSTER_PG_PASSWORD"],
        dbname=db,
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database for this module, dropped afterwards."""
    base = os.environ.get("EVAL_PIPELINE_TEST_PG_DB", "eval_pipeline_test")
    try:
        admin = _connect(base)
    except Exception as exc:  # the driver's OperationalError, or no driver
        if os.environ.get("EVAL_PIPELINE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable ({exc}); scripts/postgres.sh starts it")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"eval_pipeline_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def home(tmp_path: Path, database: str, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the production dagster.yaml, its variables set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for key, value in {**PG, "DAGSTER_PG_DB": database, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)
    # Each test starts from empty tables (the database is shared within the module).
    conn = _connect(database)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        tables = [r[0] for r in cur.fetchall()]
        if tables:
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    conn.close()
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", ONE_MODEL, datasets=("qa",))


def _instance(home: Path) -> dg.DagsterInstance:
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def test_the_production_instance_stores_runs_materializations_and_checks_in_postgresql(
    home, project, database
):
    with _instance(home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        # The queue that tags each run of one model with what it draws on (run_queue.py).
        assert isinstance(instance.run_coordinator, CatalogQueuedRunCoordinator)
        result = run_suite(project, project / "store", PARTITION, instance, regression=False)
        assert result.success
    # A new process would see the same: read back through a fresh instance.
    with _instance(home) as again:
        [record] = again.get_run_records()
        assert record.dagster_run.run_id == result.run_id
        assert record.dagster_run.tags["dagster/partition"] == PARTITION
        materialized = again.get_materialized_partitions(dg.AssetKey("aggregates"))
        assert materialized == {PARTITION}
        history = again.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("generations"), "generations_complete"), limit=5
        )
        assert [h.status.value for h in history] == ["SUCCEEDED"]
    conn = _connect(database)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 1
    conn.close()


def test_the_regression_sensor_keeps_its_promise_on_a_postgresql_instance(home, project):
    from eval_pipeline.defs import build_definitions

    sensor = build_definitions(str(project), str(project / "store")).resolve_sensor_def(
        "regression_sensor"
    )
    with _instance(home) as instance, receiver() as hook:
        alerts = alerts_to(hook.url)

        def tick(cursor):
            ctx = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"alerts": alerts}
            )
            data = sensor.evaluate_tick(ctx)
            return data.cursor or cursor

        cursor = tick(None)
        result = run_suite(project, project / "store", PARTITION, instance, regression=False)
        cursor = tick(cursor)
        tick(cursor)
        tick(json.dumps({"after": -1}))
        [event] = hook.events
        assert event["run_id"] == result.run_id and event["metric"] == "answer_match"
        assert hook.requests == 1


@contextmanager
def _webserver(home: Path, project: Path, port: int) -> Iterator[subprocess.Popen]:
    """``dagster-webserver`` on ``port``, answering, for the length of the block."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(project / "store"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    with processes.started(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stop_timeout_s=30,
    ) as proc:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"dagster-webserver exited {proc.returncode}: {proc.stderr.read()[-3000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not answer within 120 s"
            time.sleep(0.5)
        yield proc


QUERY = """
{
  runsOrError { ... on Runs { results { runId status jobName } } }
  assetOrError(assetKey: {path: ["aggregates"]}) {
    ... on Asset {
      assetMaterializations(partitions: ["qa|fake-good"]) {
        runId partition metadataEntries { label }
      }
    }
  }
  generations: assetCheckExecutions(
    assetKey: {path: ["generations"]}, checkName: "generations_complete", limit: 5
  ) { runId status partition }
  regression: assetCheckExecutions(
    assetKey: {path: ["aggregates"]}, checkName: "aggregates_regression", limit: 5
  ) { runId status partition evaluation { metadataEntries { label } } }
}
"""


def _query(port: int) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=60)
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.mark.slow
def test_runs_materializations_and_check_results_survive_a_webserver_restart(home, project):
    with _instance(home) as instance:
        result = run_suite(project, project / "store", PARTITION, instance, regression=False)
    port = free_port()
    with _webserver(home, project, port) as proc:
        before = _query(port)
    assert proc.returncode is not None
    with _webserver(home, project, port):
        after = _query(port)

    assert after == before
    [run] = after["runsOrError"]["results"]
    assert (run["runId"], run["status"], run["jobName"]) == (
        result.run_id,
        "SUCCESS",
        "regression_suite_job",
    )
    [mat] = after["assetOrError"]["assetMaterializations"]
    assert mat["partition"] == PARTITION
    assert "answer_match/mean" in {e["label"] for e in mat["metadataEntries"]}
    assert [(c["status"], c["partition"]) for c in after["generations"]] == [
        ("SUCCEEDED", PARTITION)
    ]
    [regression] = after["regression"]
    assert regression["status"] == "FAILED" and regression["runId"] == result.run_id
    assert "answer_match/delta" in {e["label"] for e in regression["evaluation"]["metadataEntries"]}
