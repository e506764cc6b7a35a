"""Asset checks: thin wrappers around the validators in ``eval_pipeline.stages.checks``."""

from collections.abc import Callable

import dagster as dg

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.check_results import grid_check_result
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.stages import checks
from eval_pipeline.stages.checks import CheckOutcome


def build_checks(
    grid: dg.MultiPartitionsDefinition,
    generations: dg.AssetsDefinition,
    scores: dg.AssetsDefinition,
) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=generations, blocking=True, partitions_def=grid)
    def generations_complete(
        context: dg.AssetCheckExecutionContext, store: StoreResource, catalog: CatalogResource
    ) -> dg.AssetCheckResult:
        """Every requested sample has exactly one generation with a completion; blocks scoring."""
        loaded = catalog.load()
        return _run(
            context,
            lambda k: checks.generations_complete(
                store.get(),
                k.dataset,
                k.model,
                per_problem=loaded.samples_per_problem(k.dataset),
                per_task=loaded.limits_per_task(k.dataset),
            ),
        )

    @dg.asset_check(asset=scores, blocking=True, partitions_def=grid)
    def scores_complete(
        context: dg.AssetCheckExecutionContext, store: StoreResource, catalog: CatalogResource
    ) -> dg.AssetCheckResult:
        """Every generation (an lm-eval document: its samples together) has one score per metric."""
        specs = catalog.load().dataset_specs
        return _run(
            context,
            lambda k: checks.scores_cover_generations(
                store.get(), k.dataset, k.model, by_problem=specs[k.dataset].lm_eval
            ),
        )

    return [generations_complete, scores_complete]


def _run(
    context: dg.AssetCheckExecutionContext, validate: Callable[[PartitionKey], CheckOutcome]
) -> dg.AssetCheckResult:
    verdicts = []
    for key in current_partitions(context):
        outcome = validate(key)
        verdicts.append(
            (
                key,
                dg.AssetCheckResult(
                    passed=outcome.passed,
                    description=f"{key.key}: {outcome.description}",
                    metadata=outcome.metadata,
                ),
            )
        )
    return grid_check_result(context, verdicts)
