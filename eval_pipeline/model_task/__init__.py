"""What one model job does, wherever it runs (in the Dagster step or on a SLURM node).

A :class:`ModelTask` names one model and the work to do with it (generate datasets,
judge partitions, calibrate rubrics); :func:`run_node` loads the model once, does the work
and returns a :class:`NodeResult`. Plain data in, plain data out, no Dagster: the runners
(:mod:`eval_pipeline.runners`) decide where it runs.
"""

from eval_pipeline.node._plan import (
    calibration_task,
    generation_tasks,
    judge_rubrics,
    judging_tasks,
    training_tasks,
)
from eval_pipeline.node._run import read_progress, run_node
from eval_pipeline.node._task import ModelTask, NodeResult, Work, WorkKind, WorkResult

__all__ = [
    "ModelTask",
    "NodeResult",
    "Work",
    "WorkKind",
    "WorkResult",
    "calibration_task",
    "generation_tasks",
    "judge_rubrics",
    "judging_tasks",
    "read_progress",
    "run_node",
    "training_tasks",
]
