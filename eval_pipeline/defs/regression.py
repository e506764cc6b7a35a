"""Regression detection in Dagster: a partitioned check on ``aggregates`` and a report asset.

Both compare per sample with the pinned baseline named by ``$EVAL_PIPELINE_BASELINE``
(default ``main``, in ``baselines/main/``); see :mod:`eval_pipeline.regression`. The check
blocks: a regressed cell fails its run and is held out of the reports (``defs/holds.py``).
"""

from pathlib import Path

import dagster as dg

from eval_pipeline.defs.check_results import grid_check_result
from eval_pipeline.defs.holds import (
    HELD_TAG,
    HELD_TAG_VALUE,
    REGRESSION_CHECK,
    held_cells,
    hold_metadata,
)
from eval_pipeline.defs.jobs import REPORTING_GROUP
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.regression import (
    baseline_name,
    partition_outcome,
    regression_report,
    write_report,
)
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.alerts import AlertsResource


def build_regression_defs(
    grid: dg.MultiPartitionsDefinition, aggregates: dg.AssetsDefinition
) -> tuple[dg.AssetChecksDefinition, dg.AssetsDefinition]:
    """The ``aggregates_regression`` check and the ``regression_report`` asset."""

    @dg.asset_check(asset=aggregates, name=REGRESSION_CHECK, blocking=True, partitions_def=grid)
    def aggregates_regression(
        context: dg.AssetCheckExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.AssetCheckResult:
        """Compares the partition's per-sample scores with the pinned baseline.

        McNemar for pass/fail metrics, paired bootstrap otherwise; fails when a metric
        dropped significantly and by more than its threshold.

        Blocking: a failure fails this step, so the run fails and nothing downstream of
        the cell's ``aggregates`` runs in it; the reports hold the cell (they publish its
        last passing numbers) until a passing verdict: a rerun of the fixed cell, or this
        check run again on the cell after the baseline is re-pinned.

        Metadata: ``baseline``, ``regressed_metrics`` (comma separated, empty when none),
        and ``<metric>/delta`` and ``<metric>/p_value`` per compared metric.
        """
        keys = current_partitions(context)
        outcomes = [
            (k, partition_outcome(catalog.root, store.get(), k.model, k.dataset)) for k in keys
        ]
        verdicts = [
            (
                key,
                dg.AssetCheckResult(
                    passed=outcome.passed,
                    description=outcome.description,
                    metadata=outcome.metadata,
                ),
            )
            for key, outcome in outcomes
        ]
        # A run over several cells: each cell's own result (its partition) carries its
        # metrics, which regression_sensor alerts on; the summary names the regressed ones.
        regressed = [
            f"{key.key}:{metric}"
            for key, outcome in outcomes
            for metric in str(outcome.metadata["regressed_metrics"]).split(",")
            if metric
        ]
        if not all(outcome.passed for _, outcome in outcomes):
            # The run fails (the check blocks) though it evaluated its cells: the nightly
            # schedule reads this tag and counts the run as their last result.
            context.instance.add_run_tags(context.run.run_id, {HELD_TAG: HELD_TAG_VALUE})
        return grid_check_result(
            context,
            verdicts,
            {"baseline": baseline_name(), "regressed_metrics": ",".join(regressed)},
        )

    @dg.asset(
        name="regression_report",
        deps=[aggregates],
        group_name=REPORTING_GROUP,
        kinds={"markdown", "json"},
    )
    def regression_report_asset(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        alerts: AlertsResource,
    ) -> dg.MaterializeResult:
        """Every stored model x dataset compared with the pinned baseline.

        Per metric: baseline, current, delta with a paired-bootstrap 95% CI, p-value
        (McNemar for pass/fail, paired bootstrap otherwise) and the samples that flipped.
        Written as Markdown and JSON to ``<store>/reports/regression.{md,json}``; the
        metadata shows the report's beginning and the first regressed metrics, and the
        cells held out of the leaderboard (``held``, ``held_cells``: partition, metric,
        delta, p-value, run link). Materialized by ``reporting_job``.
        """
        s = store.get()
        report, note = regression_report(catalog.root, s)
        md_path, json_path, markdown = write_report(s, report, note)
        regressions = report.regressions if report else []
        holds = held_cells(context.instance, alerts.ui_base_url)
        return dg.MaterializeResult(
            metadata={
                **hold_metadata(s, holds),
                "baseline": baseline_name(),
                "regressed": bool(regressions),
                "regressed_metrics": _first(
                    [f"{c.partition}:{c.metric}" for c in regressions], METADATA_ROWS
                ),
                "regressions": len(regressions),
                "metrics_compared": len(report.comparisons) if report else 0,
                "markdown_path": dg.MetadataValue.path(str(md_path)),
                "json_path": dg.MetadataValue.path(str(json_path)),
                "report": dg.MetadataValue.md(_head(markdown, md_path)),
            }
        )

    return aggregates_regression, regression_report_asset


# Lines of the Markdown report (and regressed metrics) kept in the asset's metadata; the
# files hold all of it.
METADATA_ROWS = 200


def _head(markdown: str, path: Path) -> str:
    lines = markdown.splitlines()
    if len(lines) <= METADATA_ROWS:
        return markdown
    rest = len(lines) - METADATA_ROWS
    return "\n".join([*lines[:METADATA_ROWS], "", f"… {rest} more lines in `{path}`."])


def _first(items: list[str], limit: int) -> str:
    shown = ",".join(items[:limit])
    return shown if len(items) <= limit else f"{shown},… ({len(items) - limit} more)"
