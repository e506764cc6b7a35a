"""Rendered reports (the HTML leaderboard with PNG plots) and the results tables of the CLI."""

from eval_pipeline.report._html import PLOTS, HtmlReport, write_html_report
from eval_pipeline.report._tables import (
    SPEND_SCHEMA,
    frame_json,
    frame_markdown,
    judge_spend,
    results_table,
    samples_table,
)

__all__ = [
    "PLOTS",
    "SPEND_SCHEMA",
    "HtmlReport",
    "frame_json",
    "frame_markdown",
    "judge_spend",
    "results_table",
    "samples_table",
    "write_html_report",
]
