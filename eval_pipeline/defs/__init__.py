"""Dagster definitions: assets, checks and jobs (thin glue over ``eval_pipeline.stages``).

Also the repair of the run history the CLI calls (``mark_dead_runs``).
"""

from eval_pipeline.defs.build import build_definitions
from eval_pipeline.defs.run_history import mark_dead_runs

__all__ = ["build_definitions", "mark_dead_runs"]
