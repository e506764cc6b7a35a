"""The documented command lines, run as a user would.

`dagster job execute`, `dagster asset materialize` and `eval-pipeline`, each in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from eval_pipeline.storage import Store
from eval_pipeline_tests.projects import make_project

BIN = Path(sys.executable).parent


@pytest.fixture
def env(tmp_path):
    project = make_project(tmp_path / "project", datasets=("qa", "json-extract"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    environ = {
        **os.environ,
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(tmp_path / "store"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    return environ


def _run(args, env, check=True):
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(
            f"{args} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def _runs(env) -> list:
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        return instance.get_run_records()


def test_dagster_job_execute_runs_the_ci_suite_for_one_partition(env):
    tags = {
        "dagster/partition": "qa|fake-good",
        "dagster/partition/dataset": "qa",
        "dagster/partition/model": "fake-good",
    }
    _run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "eval_pipeline.definitions",
            "-j",
            "ci_suite_job",
            "--tags",
            json.dumps(tags),
        ],
        env,
    )
    gens = Store(env["EVAL_PIPELINE_STORE"]).read("generations", dataset="qa", model="fake-good")
    assert gens.height == 5  # the CI suite's sample limit
    records = _runs(env)
    assert len(records) == 1 and records[0].dagster_run.tags["dagster/partition"] == "qa|fake-good"


def _materialize(env, select: str, partition: str) -> None:
    """``dagster asset materialize`` of ``select`` for one partition."""
    module = ["-m", "eval_pipeline.definitions"]
    command = [str(BIN / "dagster"), "asset", "materialize", *module]
    _run([*command, "--select", select, "--partition", partition], env)


def test_dagster_asset_materialize_runs_the_whole_graph_for_one_partition(env):
    _materialize(env, "generations*", "json-extract|fake-echo")
    store = Store(env["EVAL_PIPELINE_STORE"])
    assert store.read("generations", dataset="json-extract", model="fake-echo").height == 128
    board = store.read("leaderboard")
    assert board.select("model", "dataset").rows() == [("fake-echo", "json-extract")]
    assert store.read("dataset_samples", dataset="json-extract").height == 128


def test_dagster_asset_materialize_writes_one_datasets_tables_by_its_dataset_key(env):
    _materialize(env, "prompt_versions,dataset_samples", "qa")
    store = Store(env["EVAL_PIPELINE_STORE"])
    assert store.read("prompt_versions", dataset="qa")["prompt_version"][0].startswith("qa@")
    assert not store.table_dir("generations").exists()


def test_eval_pipeline_run_records_runs_and_prints_the_leaderboard_and_reruns_make_no_calls(env):
    out = _run([str(BIN / "eval-pipeline"), "run", "--model", "fake-good", "--limit", "3"], env)
    assert "| fake-good | json-extract | field_accuracy | generated | 3 | 1.000 |" in out.stdout
    assert "| fake-good | qa | answer_match | generated | 3 | 1.000 |" in out.stdout
    assert "model calls: 3" in out.stderr
    # One run per partition, then one reporting run for the leaderboard and reports.
    jobs = sorted(r.dagster_run.job_name for r in _runs(env))
    assert jobs == ["evaluation_job", "evaluation_job", "reporting_job"]
    again = _run(
        [str(BIN / "eval-pipeline"), "run", "--model", "fake-good", "--limit", "3", "--json"], env
    )
    assert again.stderr.count("model calls: 0") == 2
    rows = json.loads(again.stdout)
    assert {(r["dataset"], r["mean"]) for r in rows} == {("qa", 1.0), ("json-extract", 1.0)}
    board = _run([str(BIN / "eval-pipeline"), "leaderboard", "--json"], env)
    assert pl.DataFrame(json.loads(board.stdout)).height == 2


def test_eval_pipeline_run_with_an_unknown_model_exits_2_with_a_readable_error(env):
    out = _run([str(BIN / "eval-pipeline"), "run", "--model", "gpt-17"], env, check=False)
    assert out.returncode == 2
    assert "unknown model 'gpt-17'" in out.stderr
    assert "Traceback" not in out.stderr
