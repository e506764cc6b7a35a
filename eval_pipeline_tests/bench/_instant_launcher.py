"""A run launcher for the scale bench that starts each run and ends it at once.

``first_night_launch_s`` times the way from the schedule's tick to launched runs; with
``make ui``'s own launcher every run is also executed, 100 at a grid of 100 models. This
launcher stands in for it where only the queue is measured: the daemon dequeues a run
as usual (status STARTING), and the launcher records the run's start (STARTED) and its
cancellation at once, nothing executed, so the run frees its place in the queue.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData

MESSAGE = "the scale bench's instant launcher executes nothing"


class InstantRunLauncher(RunLauncher, ConfigurableClass):
    """Marks each launched run STARTED, then CANCELED; executes nothing."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> InstantRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        instance = self._instance
        instance.report_dagster_event(
            DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name),
            run_id=run.run_id,
        )
        started = instance.get_run_by_id(run.run_id)
        assert started is not None and started.status == dg.DagsterRunStatus.STARTED
        instance.report_run_canceled(started, message=MESSAGE)

    def terminate(self, run_id: str) -> bool:
        return False
