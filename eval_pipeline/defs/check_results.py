"""Check results over the grid: one verdict per cell, however many cells a run covers."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.dispatch import Metadata


def grid_check_result(
    context: dg.AssetCheckExecutionContext,
    verdicts: Sequence[tuple[PartitionKey, dg.AssetCheckResult]],
    summary_metadata: Metadata | None = None,
) -> dg.AssetCheckResult:
    """The check step's result, with each cell's own verdict recorded under its partition.

    Dagster records a check step's result against the run's partition. A run over several
    cells (the nightly run of one model, a single-run backfill) has a partition range, not
    a partition, so its result would be recorded for no cell: the UI's partition view
    would show nothing and a sensor could not tell which cell failed. Each cell's verdict
    is therefore logged as an evaluation of its own partition, and the step returns a
    summary: failed if any cell failed (a warning when every failure is a warning), with
    metadata ``partitions`` and ``failed`` (``summary_metadata`` added). A run of one cell
    returns that cell's verdict as it is.
    """
    if len(verdicts) == 1:
        return verdicts[0][1]
    spec = next(iter(context.check_specs))
    for key, verdict in verdicts:
        # Dagster 1.13 records a logged AssetCheckEvaluation like a returned result (its
        # partition included; test_quality_checks.py reads them back), though log_event's
        # annotation names only materializations, observations and expectations.
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(  # type: ignore[arg-type]
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=verdict.passed,
                metadata=verdict.metadata,
                severity=verdict.severity,
                description=verdict.description,
                blocking=spec.blocking,
                partition=key.key,
            )
        )
    failed = [(key, verdict) for key, verdict in verdicts if not verdict.passed]
    warn_only = bool(failed) and all(
        verdict.severity == dg.AssetCheckSeverity.WARN for _, verdict in failed
    )
    description = (
        "; ".join(f"{key.key}: {verdict.description}" for key, verdict in failed)
        if failed
        else f"passed in all {len(verdicts)} partitions"
    )
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN if warn_only else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={**(summary_metadata or {}), "partitions": len(verdicts), "failed": len(failed)},
    )
