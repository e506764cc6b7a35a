"""A run launcher for the scale bench that starts each run and ends it at once.

``first_night_launch_s`` times the way from the schedule's tick to launched runs; with
``make ui``'s own launcher every run is also executed, 100 at a grid of 100 models. This
launcher stands in for it where only the queue is measured: the daemon dequeues a run
as usual (status STARTING), and the launcher records the run's start (STARTED) and its
cancellation at once, nothing executed, so the run frees its place in the queue.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher import LaunchRunContext

from eval_pipeline_tests.run_queue_drill import IdleRunLauncher

MESSAGE = "the scale bench's instant launcher executes nothing"


class InstantRunLauncher(IdleRunLauncher):
    """Marks each launched run STARTED, then CANCELED; executes nothing."""

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
