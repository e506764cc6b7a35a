"""Helpers for the tests that submit real jobs to the local SLURM cluster."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from eval_pipeline.defs import build_definitions
from eval_pipeline_tests.projects import REPO, make_project

START_SCRIPT = REPO / "scripts" / "slurm" / "start-slurm.sh"
DRILL = "eval_pipeline_tests.slurm_drill"

# A profile for the local test cluster: small jobs, a one-minute limit (the shortest SLURM
# has) and a signal well before it, so a timeout drill is over in well under a minute.
TEST_PROFILE = {
    "description": "tests on the local cluster",
    "cpus_per_task": 1,
    "timeout_min": 5,
    "array_parallelism": 2,
    "signal_delay_s": 30,
    "max_requeues": 2,
    "env": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
}


def cluster_is_up() -> bool:
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "UP" in out.stdout


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The local cluster, started by the project's script when it is not running."""
    if not cluster_is_up():
        subprocess.run(["bash", str(START_SCRIPT)], check=True, timeout=600)
    assert cluster_is_up()


def slurm_project(root: Path, models: list[dict], profiles: dict[str, dict] | None = None) -> Path:
    """A project with ``models``, the qa and json-extract datasets and SLURM profiles."""
    project = make_project(root, models={"models": models}, datasets=("qa", "json-extract"))
    shutil.copytree(REPO / "slurm", project / "slurm")
    for name, profile in {"test": TEST_PROFILE, **(profiles or {})}.items():
        (project / "slurm" / f"{name}.yaml").write_text(yaml.safe_dump(profile))
    return project


def drill_model(slug: str, **options) -> dict:
    return {
        "slug": slug,
        "provider": "drill",
        "model_id": f"drill/{slug}",
        "runs_on": "slurm",
        "slurm_profile": "test",
        "options": {"mode": "reference", **options},
    }


@dataclass
class RunOutcome:
    """An in-process run and each partition's recorded materialization metadata, per asset.

    The metadata is read from the instance: materializations a step logs itself (those of
    the healthy partitions of a failed step) are not in the in-process result.
    """

    result: dg.ExecuteInProcessResult
    metadata: dict[str, dict[str, dict]]

    @property
    def success(self) -> bool:
        return self.result.success


def materialize_partitions(
    project: Path,
    store_root: Path,
    first: str,
    last: str,
    *,
    assets: tuple[str, ...] = ("generations",),
    sample_limit: int | None = 3,
    slurm: dict | None = None,
    config: dict | None = None,
) -> RunOutcome:
    """Materialize the partition rectangle ``first``..``last`` in one run.

    That is what a single-run backfill launches; the ``slurm`` resource submits to the
    local cluster and its jobs import the drill provider. ``assets`` are grid assets
    (``generations`` writes the per-dataset tables of its datasets itself). ``config`` adds fields to the
    ``generations`` run config.
    """
    from eval_pipeline.resources.slurm import SlurmResource

    defs = build_definitions(str(project), str(store_root))
    resources = dict(defs.resources or {})
    resources["slurm"] = SlurmResource(poll_interval_s=1.0, imports=[DRILL], **(slurm or {}))
    selected = [a for a in defs.assets if a.key.to_user_string() in assets]
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    fields = {"sample_limit": sample_limit, **(config or {})}
    run_config = {"ops": {"generations": {"config": fields}}}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            selected,
            resources=resources,
            tags=tags,
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )
        metadata: dict[str, dict[str, dict]] = {}
        for asset in assets:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            metadata[asset] = {
                str(r.partition_key): {
                    k: v.value for k, v in r.asset_materialization.metadata.items()
                }
                for r in records
                if r.run_id == result.run_id
            }
    return RunOutcome(result, metadata)


def step_failure(run: RunOutcome, step: str) -> str:
    """The description of ``step``'s failure ('' when it did not fail)."""
    for event in run.result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key == step:
            data = event.event_specific_data
            return f"{data.user_failure_data.description if data.user_failure_data else ''}\n{data.error}"
    return ""


def job_state(job_id: str) -> str:
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=10
    ).stdout
    for part in out.split():
        if part.startswith("JobState="):
            return part.split("=", 1)[1]
    return "UNKNOWN"
