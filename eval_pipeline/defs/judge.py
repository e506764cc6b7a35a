"""Judge calibration assets (one per judge x rubric in use) and the judge tasks' outcomes."""

import re
from collections.abc import Sequence

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.defs.dispatch import Metadata, run_tasks, runners_for
from eval_pipeline.judge import CalibrationReport, calibrate_judge, calibration_markdown
from eval_pipeline.model_task import calibration_task, judge_rubrics
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.slurm import SlurmResource
from eval_pipeline.runners import TaskOutcome
from eval_pipeline.storage import Store


def judge_pairs(catalog: Catalog) -> list[tuple[str, str]]:
    """Every (judge model, rubric) named by an ``llm_judge`` scorer in the catalog."""
    return sorted({pair for d in catalog.dataset_names for pair in judge_rubrics(catalog, d)})


def calibration_key(judge: str, rubric: str) -> dg.AssetKey:
    """``judge_calibration/<judge>/<rubric>``, slugs made into asset-key names."""

    def ident(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", text)

    return dg.AssetKey(["judge_calibration", ident(judge), ident(rubric)])


def build_calibration_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """A ``judge_calibration`` asset per judge x rubric in use."""
    return [_calibration_asset(judge, rubric) for judge, rubric in judge_pairs(catalog)]


def calibration_metadata(report: CalibrationReport, judge_calls: int) -> Metadata:
    """The metadata of a calibration's materialization."""
    metadata: Metadata = {
        "judge": report.judge,
        "rubric": report.rubric,
        "rubric_version": report.rubric_version,
        "status": report.status,
        "message": report.message,
        "labels": report.labels,
        "labels_source": report.labels_source,
        "parsed_verdicts": report.parsed,
        "judge_calls": judge_calls,
        "reused": judge_calls == 0,
        "path": dg.MetadataValue.path(str(report.path)),
    }
    for name, figure in report.agreement.items():
        for key, value in figure.items():
            if value is not None:
                metadata[f"judge_human/{name}{'' if key == 'value' else '_' + key}"] = float(value)
    for key, value in report.self_consistency.items():
        if value is not None:
            name = "self_consistency" if key == "value" else f"self_consistency_{key}"
            metadata[name] = float(value)
    if report.result is not None:
        result = report.result
        metadata["method"] = result.method
        metadata["calibration_version"] = result.version
        for when, agreement in (("before", result.before), ("after", result.after)):
            for name, value in agreement.as_dict().items():
                if value is not None:
                    metadata[f"{when}/{name}"] = float(value)
        for method, mae in result.cv_mae.items():
            metadata[f"cv_mae/{method}"] = float(mae)
        metadata["table"] = dg.MetadataValue.md(calibration_markdown([report]))
    return metadata


def log_calibrations(
    context: dg.AssetExecutionContext,
    catalog: Catalog,
    store: Store,
    outcomes: Sequence[TaskOutcome],
) -> None:
    """Record each calibration the judging tasks fitted as a materialization of its asset.

    The stored calibration is read back (nothing is judged again: the fit is reused), so
    the asset's history in the UI shows every calibration the scores used.
    """
    for outcome in outcomes:
        if not outcome.ok:
            continue
        assert outcome.result is not None
        for result in outcome.result.results:
            if result.work.kind != "calibrate" or not result.ok:
                continue
            judge, rubric = outcome.task.model, result.work.rubric
            report = calibrate_judge(catalog, store, judge, rubric)
            if report.result is None:
                context.log.warning(f"judge {judge} on {rubric}: {report.message}")
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=calibration_key(judge, rubric),
                    metadata=calibration_metadata(report, result.stats.model_calls),
                )
            )


def judging_failures(
    context: dg.AssetExecutionContext, outcomes: Sequence[TaskOutcome]
) -> dict[str, str]:
    """The partitions whose judging failed, with the problem.

    A judge task that failed as a whole, or whose calibration failed, fails every partition
    it rates; otherwise each partition fails with its own judging.
    """
    failures: dict[str, str] = {}
    for outcome in outcomes:
        task = outcome.task
        problem = None if outcome.ok else f"judge {task.model}: {outcome.error}"
        if outcome.log_tail and problem:
            context.log.error(f"{problem}\n--- log tail ---\n{outcome.log_tail}")
        results = outcome.result.results if outcome.result is not None else ()
        for result in results:
            if result.work.kind == "calibrate" and not result.ok and problem is None:
                problem = f"judge {task.model} calibration of {result.work.rubric}: {result.error}"
        for work in task.work:
            if work.kind != "judge":
                continue
            key = f"{work.dataset}|{work.judged_model}"
            done = outcome.result.result_for(work) if outcome.result is not None else None
            own = None if done is None or done.ok else f"judge {task.model}: {done.error}"
            if problem or own:
                failures[key] = problem or own or ""
                context.log.error(f"{key}: {failures[key]}")
    return failures


def _calibration_asset(judge: str, rubric: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=calibration_key(judge, rubric),
        group_name="judging",
        kinds={"json"},
        description=(
            f"Calibration of judge `{judge}` on the `{rubric}` rubric: the judge rates the "
            "labelled responses in datasets/judge-labels/, then isotonic, Platt-style and "
            "linear maps are fitted with 5-fold cross-validation and the one with the lowest "
            "held-out MAE is kept (or none, if the raw scores do best). Reports Spearman, "
            "quadratic-weighted kappa and MAE before and after. Refuses (status `refused`, "
            "scores stay uncalibrated) when fewer than 20 labelled responses get a readable "
            "verdict. The judge runs where its catalog entry says (inline or SLURM); "
            "`judgements` also calibrates what its partitions use as it runs."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        slurm: SlurmResource,
    ) -> dg.MaterializeResult:
        cat, st = catalog.load(), store.get()
        task = calibration_task(cat, st, judge, rubric)
        (outcome,) = run_tasks(context, cat, runners_for(slurm.runner(cat, st)), [task])
        result = outcome.result.results[0] if outcome.result is not None else None
        if result is None or not result.ok:
            problem = outcome.error if result is None else result.error
            raise dg.Failure(description=f"calibration of {judge} on {rubric}: {problem}")
        report = calibrate_judge(cat, st, judge, rubric)
        if report.result is None:
            context.log.warning(f"judge {judge} on {rubric}: {report.message}")
        return dg.MaterializeResult(metadata=calibration_metadata(report, result.stats.model_calls))

    return _asset
