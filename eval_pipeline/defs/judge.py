"""Judge calibration assets: one per judge x rubric that some dataset's ``llm_judge`` uses."""

import re

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.judge import JUDGE_SCORER, JudgeParams, calibrate_judge, calibration_markdown
from eval_pipeline.resources import CatalogResource, StoreResource


def judge_pairs(catalog: Catalog) -> list[tuple[str, str]]:
    """Every (judge model, rubric) named by an ``llm_judge`` scorer in the catalog."""
    pairs = set()
    for spec in catalog.dataset_specs.values():
        for scorer in spec.scorers:
            if scorer.name == JUDGE_SCORER:
                params = JudgeParams.model_validate(scorer.params)
                pairs.update((judge, params.rubric) for judge in params.judges)
    return sorted(pairs)


def calibration_key(judge: str, rubric: str) -> dg.AssetKey:
    """``judge_calibration/<judge>/<rubric>``, slugs made into asset-key names."""

    def ident(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", text)

    return dg.AssetKey(["judge_calibration", ident(judge), ident(rubric)])


def build_calibration_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """A ``judge_calibration`` asset per judge x rubric in use."""
    return [_calibration_asset(judge, rubric) for judge, rubric in judge_pairs(catalog)]


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
            "verdict."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.MaterializeResult:
        report = calibrate_judge(catalog.load(), store.get(), judge, rubric)
        metadata: dict[str, object] = {
            "judge": judge,
            "rubric": rubric,
            "rubric_version": report.rubric_version,
            "status": report.status,
            "message": report.message,
            "labels": report.labels,
            "labels_source": report.labels_source,
            "parsed_verdicts": report.parsed,
            "judge_calls": report.judge_calls,
            "reused": report.reused,
            "path": dg.MetadataValue.path(str(report.path)),
        }
        if report.result is None:
            context.log.warning(f"judge {judge} on {rubric}: {report.message}")
        else:
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
        return dg.MaterializeResult(metadata=metadata)

    return _asset
