"""The runner seam: where a generation task runs, behind one interface and one result type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eval_pipeline.model_task import ModelTask, ModelTaskResult


class Log(Protocol):
    """What a runner logs to (Dagster's ``context.log``, a ``logging.Logger``)."""

    def info(self, msg: str) -> object: ...

    def warning(self, msg: str) -> object: ...

    def error(self, msg: str) -> object: ...


@dataclass(frozen=True)
class TaskOutcome:
    """How one task ended: the node's result, or why the whole task failed.

    A failed task (its model did not load, its SLURM job crashed or was cancelled) has no
    result; the pieces of work of a task that ran are judged one by one from
    ``result.results``.
    """

    task: ModelTask
    result: ModelTaskResult | None
    error: str | None = None
    job_id: str = ""
    log_tail: str = ""
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None


class Submission(ABC):
    """Tasks handed to a runner; :meth:`wait` returns one outcome per task, in order."""

    @property
    def job_ids(self) -> dict[str, str]:
        """Scheduler job id by task model (empty where nothing was scheduled)."""
        return {}

    @abstractmethod
    def wait(self, log: Log | None = None) -> list[TaskOutcome]:
        """Run or wait for every task, logging progress to ``log``."""

    def cancel(self) -> list[str]:
        """Stop what has not finished; returns the ids of what was cancelled."""
        return []


class Runner(ABC):
    """Where tasks run. Both runners run :func:`eval_pipeline.model_task.run_model_task` on each task."""

    runs_on: str

    @abstractmethod
    def submit(self, tasks: Sequence[ModelTask], *, run_id: str) -> Submission:
        """Hand over ``tasks`` (one model each) without waiting for them."""
