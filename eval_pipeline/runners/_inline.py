"""The inline runner: tasks run in this process, one after the other."""

from __future__ import annotations

from collections.abc import Sequence

from eval_pipeline.engine import Progress
from eval_pipeline.model_task import ModelTask, Work, run_model_task
from eval_pipeline.runners._base import Log, Runner, Submission, TaskOutcome


class InlineSubmission(Submission):
    def __init__(self, tasks: Sequence[ModelTask]):
        self.tasks = list(tasks)

    def wait(self, log: Log | None = None) -> list[TaskOutcome]:
        outcomes = []
        for task in self.tasks:

            def progress(work: Work, p: Progress, model: str = task.model) -> None:
                if log is not None:
                    log.info(f"{model}: {work.label}: {p.message()}")

            try:
                result = run_model_task(task, progress)
            except Exception as exc:  # the model failed to build or load
                error = f"{type(exc).__name__}: {exc}"
                if log is not None:
                    log.error(f"{task.model}: {error}")
                outcomes.append(TaskOutcome(task, None, error=error))
                continue
            outcomes.append(TaskOutcome(task, result))
        return outcomes


class InlineRunner(Runner):
    """Runs each task in the calling process (the Dagster step, the CLI, a test).

    Nothing runs until :meth:`Submission.wait`, so SLURM jobs submitted alongside queue
    and run while the inline tasks work.
    """

    runs_on = "inline"

    def submit(self, tasks: Sequence[ModelTask], *, run_id: str) -> Submission:
        return InlineSubmission(tasks)
