"""What one model job does, wherever it runs (in the Dagster step or on a SLURM node).

A :class:`ModelTask` names one model and the work to do with it (generate datasets,
judge partitions, calibrate rubrics); :func:`run_model_task` loads the model once, does the work
and returns a :class:`ModelTaskResult`. Plain data in, plain data out, no Dagster: the runners
(:mod:`eval_pipeline.runners`) decide where it runs.
"""

from eval_pipeline.model_task._plan import (
    calibration_task,
    generation_tasks,
    judge_rubrics,
    judging_tasks,
    training_tasks,
)
from eval_pipeline.model_task._run import read_progress, run_model_task
from eval_pipeline.model_task._task import ModelTask, ModelTaskResult, Work, WorkKind, WorkResult

__all__ = [
    "ModelTask",
    "ModelTaskResult",
    "Work",
    "WorkKind",
    "WorkResult",
    "calibration_task",
    "generation_tasks",
    "judge_rubrics",
    "judging_tasks",
    "read_progress",
    "run_model_task",
    "training_tasks",
]
