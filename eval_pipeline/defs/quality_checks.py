"""Per-partition checks of a cell's evaluation quality: judge calibration and sandbox programs.

Both are checks on ``aggregates`` partitioned by the grid, so the UI's partition view of
``aggregates`` shows each cell's verdict next to ``aggregates_regression`` and
``adapter_vs_base``. Neither blocks: a cell with an uncalibrated judge or a suspicious
program still has its numbers, with the check's warning beside them.
"""

from collections.abc import Callable

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.check_results import grid_check_result
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.judge import rubric_prompt, stored_calibrations
from eval_pipeline.model_task import judge_rubrics
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.storage import Store

# Held-out mean absolute error (1-5 scale) above which a fitted calibration is too poor.
MAX_CALIBRATED_MAE = 1.0

# A check outcome: passed, description, metadata.
Metadata = dict[str, float | int | str]
Outcome = tuple[bool, str, Metadata]


def build_quality_checks(
    grid: dg.MultiPartitionsDefinition, aggregates: dg.AssetsDefinition
) -> list[dg.AssetChecksDefinition]:
    """``aggregates_calibration`` and ``aggregates_sandbox``, one result per partition."""

    @dg.asset_check(
        asset=aggregates,
        name="aggregates_calibration",
        blocking=False,
        partitions_def=grid,
    )
    def aggregates_calibration(
        context: dg.AssetCheckExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.AssetCheckResult:
        """Every judge x rubric the cell's judge metrics use has a good calibration.

        Passes for a dataset without judge metrics. Fails (severity WARN) when a judge's
        calibration for the rubric as it stands is missing, was refused, or its held-out
        mean absolute error exceeds 1.0 on the 1-5 scale; metadata: each pair's status
        and held-out agreement.
        """
        cat, st = catalog.load(), store.get()
        return _per_partition(context, lambda key: calibration_outcome(cat, st, key))

    @dg.asset_check(
        asset=aggregates, name="aggregates_sandbox", blocking=False, partitions_def=grid
    )
    def aggregates_sandbox(
        context: dg.AssetCheckExecutionContext, store: StoreResource
    ) -> dg.AssetCheckResult:
        """No program the sandbox ran for this cell looks like tampering.

        Fails (severity WARN) when a code metric counts suspicious programs (writes
        outside its folder, process or network use, reading the tests; see the sandbox
        docs); metadata: the count per metric. Passes for datasets without code metrics.
        """
        st = store.get()
        return _per_partition(context, lambda key: sandbox_outcome(st, key))

    return [aggregates_calibration, aggregates_sandbox]


def calibration_outcome(catalog: Catalog, store: Store, key: PartitionKey) -> Outcome:
    """Whether every judge x rubric of ``key``'s dataset has a good, current calibration."""
    pairs = judge_rubrics(catalog, key.dataset)
    if not pairs:
        return True, "no judge metrics", {"judges": 0}
    stored = {(r.judge, r.rubric): r for r in stored_calibrations(store)}
    problems: list[str] = []
    metadata: Metadata = {"judges": len(pairs)}
    for judge, rubric in pairs:
        name = f"{judge}/{rubric}"
        report = stored.get((judge, rubric))
        current = rubric_prompt(catalog.root, rubric).version
        if report is None or report.rubric_version != current:
            problems.append(f"{name}: no calibration for rubric {current}")
            metadata[f"{name}/status"] = "missing"
            continue
        metadata[f"{name}/status"] = report.status
        if report.result is None:
            problems.append(f"{name}: calibration {report.status}: {report.message}")
            continue
        mae = report.result.after.mae
        metadata[f"{name}/after_mae"] = float("nan") if mae is None else float(mae)
        if mae is not None and mae > MAX_CALIBRATED_MAE:
            problems.append(f"{name}: held-out MAE {mae:.2f} > {MAX_CALIBRATED_MAE}")
    if problems:
        return False, "; ".join(problems), metadata
    return True, f"{len(pairs)} judge calibration(s) fitted", metadata


def sandbox_outcome(store: Store, key: PartitionKey) -> Outcome:
    """Whether any code metric of ``key`` counted suspicious programs."""
    frame = store.read_optional("aggregates", key.dataset, key.model)
    if frame is None or "suspicious" not in frame.columns:
        return True, "no aggregates", {"suspicious": 0}
    counts = {
        row["metric"]: int(row["suspicious"])
        for row in frame.iter_rows(named=True)
        if row["suspicious"] is not None
    }
    if not counts:
        return True, "no code metrics", {"suspicious": 0}
    total = sum(counts.values())
    metadata: Metadata = {"suspicious": total}
    metadata.update({f"{metric}/suspicious": n for metric, n in counts.items()})
    if total:
        return False, f"{total} suspicious program(s) in {key.key}", metadata
    return True, "no suspicious program", metadata


def _per_partition(
    context: dg.AssetCheckExecutionContext, outcome: Callable[[PartitionKey], Outcome]
) -> dg.AssetCheckResult:
    """One warning-severity verdict per cell of the step (see ``grid_check_result``)."""
    verdicts = []
    for key in current_partitions(context):
        passed, description, metadata = outcome(key)
        verdicts.append(
            (
                key,
                dg.AssetCheckResult(
                    passed=passed,
                    description=description,
                    metadata=metadata,
                    severity=dg.AssetCheckSeverity.WARN,
                ),
            )
        )
    return grid_check_result(context, verdicts)
