"""Regression detection: pinned baselines, paired per-sample tests, reports.

``compare_runs(baseline_scores, current_scores)`` is the one entry point the Dagster
check, the ``regression_report`` asset, the ``eval-pipeline compare`` command and CI
share.
"""

from eval_pipeline.regression._baselines import (
    BASELINE_ENV,
    BASELINES_DIR,
    DEFAULT_BASELINE,
    Baseline,
    BaselineError,
    baseline_dir,
    baseline_name,
    baseline_names,
    load_baseline,
    pin_baseline,
)
from eval_pipeline.regression._holds import (
    HELD_COLUMN,
    HeldMetric,
    Hold,
    holds_markdown,
    published_aggregates,
    published_entry,
)
from eval_pipeline.regression._report import (
    RegressionOutcome,
    partition_outcome,
    regression_report,
    write_report,
)
from eval_pipeline.regression._run_vs_baseline import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    FlippedSample,
    MetricComparison,
    RegressionReport,
    compare_runs,
    report_json_text,
)
from eval_pipeline.regression._runs import (
    RunScores,
    history_entries,
    is_history_reference,
    resolve_run,
)

__all__ = [
    "BASELINES_DIR",
    "BASELINE_ENV",
    "DEFAULT_ALPHA",
    "DEFAULT_BASELINE",
    "DEFAULT_THRESHOLD",
    "HELD_COLUMN",
    "Baseline",
    "BaselineError",
    "FlippedSample",
    "HeldMetric",
    "Hold",
    "MetricComparison",
    "RegressionOutcome",
    "RegressionReport",
    "RunScores",
    "baseline_dir",
    "baseline_name",
    "baseline_names",
    "compare_runs",
    "history_entries",
    "holds_markdown",
    "is_history_reference",
    "load_baseline",
    "partition_outcome",
    "pin_baseline",
    "published_aggregates",
    "published_entry",
    "regression_report",
    "report_json_text",
    "resolve_run",
    "write_report",
]
