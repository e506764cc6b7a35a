"""Rendered reports and the results tables of the CLI.

The static HTML results explorer (:func:`write_explorer_files`: heatmap, per-sample
drill-down, run-to-run diffs, trends), the HTML leaderboard with SVG plots for Markdown
summaries (:func:`write_html_report`), and the tables of the ``results``, ``samples``,
``costs`` and ``history`` commands.
"""

from eval_pipeline.report._explorer import (
    DIFF_RUNS,
    ExplorerFolderError,
    ExplorerInput,
    metric_history,
    metric_scale,
    partition_id,
    trust_figures,
    write_explorer_files,
)
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
    "DIFF_RUNS",
    "ExplorerFolderError",
    "ExplorerInput",
    "PLOTS",
    "SPEND_SCHEMA",
    "HtmlReport",
    "frame_json",
    "frame_markdown",
    "judge_spend",
    "metric_history",
    "metric_scale",
    "partition_id",
    "trust_figures",
    "results_table",
    "samples_table",
    "write_explorer_files",
    "write_html_report",
]
