"""Dagster definitions: assets, checks and jobs (thin glue over ``eval_pipeline.stages``).

Also the repair of the run history the CLI calls (``mark_dead_runs``). The definitions'
modules load when ``build_definitions`` is first used, so a command that only repairs
the run history does not build them.
"""

from typing import Any

from eval_pipeline.defs.run_history import mark_dead_runs

__all__ = ["build_definitions", "mark_dead_runs"]


def __getattr__(name: str) -> Any:
    if name == "build_definitions":
        from eval_pipeline.defs.build import build_definitions

        return build_definitions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
