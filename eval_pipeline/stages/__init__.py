"""One plain function per pipeline stage.

No Dagster here: the same function runs in a Dagster step, in a SLURM job and in a unit test.
"""

from eval_pipeline.stages.aggregate import AggregateReport, aggregate
from eval_pipeline.stages.catalog_tables import (
    TableReport,
    build_dataset_samples,
    build_prompt_versions,
    build_train_samples,
)
from eval_pipeline.stages.generate import GenerateReport, RunOrigin, build_requests, generate
from eval_pipeline.stages.judge import judge_partition
from eval_pipeline.stages.leaderboard import (
    build_leaderboard,
    explorer_dir,
    leaderboard_markdown,
    write_explorer,
    write_leaderboard_report,
)
from eval_pipeline.stages.score import ScoreReport, score, scoring_frame

__all__ = [
    "AggregateReport",
    "GenerateReport",
    "RunOrigin",
    "ScoreReport",
    "TableReport",
    "aggregate",
    "build_dataset_samples",
    "build_train_samples",
    "build_leaderboard",
    "explorer_dir",
    "build_prompt_versions",
    "build_requests",
    "generate",
    "judge_partition",
    "leaderboard_markdown",
    "score",
    "scoring_frame",
    "write_explorer",
    "write_leaderboard_report",
]
