"""The ``dg`` command line works against the project: check, list and launch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from eval_pipeline_tests import processes
from eval_pipeline_tests.projects import REPO, make_project

DG = Path(sys.executable).parent / "dg"


def _dg(args: list[str], project: Path, home: Path, timeout_s: float = 120) -> str:
    """Run ``dg <args>`` in the repository (its pyproject.toml is the dg project)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(project / "store"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "NO_COLOR": "1",
    }
    with processes.started(
        [str(DG), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, f"dg {' '.join(args)} failed:\n{err[-3000:]}"
    return out


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    home.mkdir()
    return make_project(tmp_path / "project", datasets=("qa",)), home


@pytest.mark.slow
def test_dg_checks_and_lists_the_definitions(small: tuple[Path, Path]) -> None:
    project, home = small
    assert "All definitions loaded successfully" in _dg(["check", "defs"], project, home)
    listed = json.loads(_dg(["list", "defs", "--json"], project, home))
    assets = {a["asset_key"] for a in listed["assets"]}
    assert {"generations", "scores", "aggregates", "versions/model", "versions/judges"} <= assets
    sensors = {s["name"] for s in listed["sensors"]}
    assert {"evaluation_automation", "versions_sensor", "catalog_sensor"} <= sensors
    assert {j["name"] for j in listed["jobs"]} >= {"evaluation_job", "reporting_job"}


@pytest.mark.slow
def test_dg_launches_one_partition(small: tuple[Path, Path]) -> None:
    project, home = small
    config = {"ops": {"generations": {"config": {"sample_limit": 2}}}}
    _dg(
        [
            "launch",
            "--assets",
            "generations,scores,aggregates",
            "--partition",
            "qa|fake-good",
            "--config-json",
            json.dumps(config),
        ],
        project,
        home,
        timeout_s=300,
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        done = instance.get_materialized_partitions(dg.AssetKey("aggregates"))
    assert done == {"qa|fake-good"}
