"""Where generation tasks run: in this process or on SLURM, behind one interface.

Both runners run the same function (:func:`eval_pipeline.model_task.run_model_task`) on the same
:class:`~eval_pipeline.model_task.ModelTask` and hand back the same
:class:`TaskOutcome`, so the Dagster side has one metadata builder and one failure loop.
The catalog's ``runs_on`` picks the runner of each model.
"""

from eval_pipeline.runners._base import Log, Runner, Submission, TaskOutcome
from eval_pipeline.runners._inline import InlineRunner
from eval_pipeline.runners._slurm import SlurmRunner, SlurmSettings, SlurmSubmission

__all__ = [
    "InlineRunner",
    "Log",
    "Runner",
    "SlurmRunner",
    "SlurmSettings",
    "SlurmSubmission",
    "Submission",
    "TaskOutcome",
]
