"""Drain a queue of runs through Dagster's run queue daemon, nothing executed.

The instance gets the project's own ``run_coordinator`` and ``concurrency`` sections
(``dagster.yaml``, ``deploy/dagster.yaml``) and :class:`IdleRunLauncher`, which launches
nothing: a dequeued run stays in progress until the drill finishes it. Each round runs
one iteration of Dagster's ``QueuedRunCoordinatorDaemon`` in this process and records
which runs are in progress.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData


class IdleRunLauncher(RunLauncher, ConfigurableClass):
    """Launches nothing: a dequeued run stays STARTING until someone finishes it."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> IdleRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        return None

    def terminate(self, run_id: str) -> bool:
        return False


@dg.op
def _nothing() -> None:
    return None


@dg.job
def queued_job() -> None:
    """Stands for the project's jobs: the queue only reads a run's tags."""
    _nothing()


def queue_overrides(config_file: Path) -> dict[str, Any]:
    """Instance overrides: ``config_file``'s run queue, and the idle launcher."""
    config = yaml.safe_load(config_file.read_text())
    return {
        "run_coordinator": config["run_coordinator"],
        "concurrency": {"runs": config["concurrency"]["runs"]},
        "run_launcher": {"module": __name__, "class": IdleRunLauncher.__name__},
    }


def submit(instance: dg.DagsterInstance, tags: Mapping[str, str]) -> dg.DagsterRun:
    """Create a run with ``tags`` and hand it to the instance's run coordinator."""
    # A queued run names its code location; the daemon pauses a location whose server fails.
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("eval_pipeline"), "__repository__"),
        queued_job.name,
    )
    run = instance.create_run_for_job(
        queued_job,
        tags=dict(tags),
        status=dg.DagsterRunStatus.NOT_STARTED,
        remote_job_origin=origin,
    )
    # The coordinator reads only the run; a launch from the UI passes its workspace too.
    return instance.run_coordinator.submit_run(dg.SubmitRunContext(run, workspace=None))  # type: ignore[arg-type]


def in_progress(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))))


def finish(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Mark ``run`` successful, as its run worker would at its end."""
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_SUCCESS.value,
        job_name=run.job_name,
        message="finished by the drill",
    )
    instance.report_dagster_event(event, run_id=run.run_id)


@contextmanager
def queue_daemon(instance: dg.DagsterInstance) -> Iterator[Any]:
    """A function that runs one iteration of Dagster's run queue daemon over ``instance``."""
    with (
        WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace,
        QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon,
    ):

        def iterate() -> None:
            for _ in daemon.run_iteration(workspace):
                pass

        yield iterate


def over_limit(
    runs: Sequence[dg.DagsterRun], limits: Sequence[Mapping[str, Any]], max_runs: int
) -> list[str]:
    """Every limit of ``limits`` (Dagster's tag_concurrency_limits) that ``runs`` exceed."""
    broken = [f"{len(runs)} runs > max_concurrent_runs {max_runs}"] if len(runs) > max_runs else []
    for limit in limits:
        key, value = limit["key"], limit.get("value")
        counts: dict[str, int] = {}
        for run in runs:
            found = run.tags.get(key)
            if found is None or (isinstance(value, str) and found != value):
                continue
            # Per unique value, or all matching runs together.
            group = found if isinstance(value, dict) else str(value)
            counts[group] = counts.get(group, 0) + 1
        broken += [
            f"{key}={v}: {n} > {limit['limit']}" for v, n in counts.items() if n > limit["limit"]
        ]
    return broken
