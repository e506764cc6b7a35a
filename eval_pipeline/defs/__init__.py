"""Dagster definitions: assets, checks and jobs (thin glue over ``eval_pipeline.stages``)."""

from eval_pipeline.defs.build import build_definitions

__all__ = ["build_definitions"]
