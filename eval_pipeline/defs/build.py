"""Builds the Definitions from a catalog root and a store root."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.catalog import load_catalog
from eval_pipeline.defs.adapters import adapter_models, build_adapter_defs, generation_deps
from eval_pipeline.defs.assets import build_assets
from eval_pipeline.defs.batches import build_batch_sensors
from eval_pipeline.defs.checks import build_checks
from eval_pipeline.defs.jobs import build_jobs
from eval_pipeline.defs.judge import build_calibration_assets
from eval_pipeline.defs.partitions import grid_partitions
from eval_pipeline.defs.quality_checks import build_quality_checks
from eval_pipeline.defs.regression import build_regression_defs
from eval_pipeline.defs.schedules import build_schedules
from eval_pipeline.defs.sensors import build_sensors
from eval_pipeline.defs.versions import version_specs
from eval_pipeline.resources import (
    CatalogResource,
    StoreResource,
    default_project_root,
    default_store_root,
)
from eval_pipeline.resources.alerts import alerts_from_env
from eval_pipeline.resources.slurm import SlurmResource
from eval_pipeline.resources.webserver import webserver_from_env
from eval_pipeline.training import load_recipes


def build_definitions(
    project_root: str | None = None, store_root: str | None = None
) -> dg.Definitions:
    """Assemble assets, checks, jobs and resources.

    The partition grid comes from the catalog at load time: adding a model to
    ``models.yaml``, a dataset folder or a recipe to ``recipes.yaml`` (its model
    ``<base>__<recipe>``) adds its partitions on the next code reload.
    """
    root = project_root or default_project_root()
    store = store_root or default_store_root(root)
    catalog = load_catalog(root, load_rows=False)
    recipes = load_recipes(root, catalog)
    grid = grid_partitions(catalog, adapter_models(recipes))
    calibrations = build_calibration_assets(catalog)
    assets = build_assets(
        grid,
        judge_deps=[a.key for a in calibrations],
        generation_deps=generation_deps(recipes),
    )
    by_name = {a.key.to_user_string(): a for a in assets}
    regression_check, regression_report = build_regression_defs(grid, by_name["aggregates"])
    adapters = build_adapter_defs(grid, recipes, by_name["aggregates"])
    return dg.Definitions(
        assets=[*assets, *calibrations, regression_report, *adapters.assets, *version_specs(grid)],
        asset_checks=[
            *build_checks(grid, by_name["generations"], by_name["scores"]),
            regression_check,
            *build_quality_checks(grid, by_name["aggregates"]),
            *adapters.checks,
        ],
        jobs=[*build_jobs(), *adapters.jobs],
        schedules=build_schedules(grid),
        sensors=[*build_sensors(grid), *adapters.sensors, *build_batch_sensors()],
        # Materializations from the UI (the implicit asset job) run in process too: one
        # partition's chain of steps gains nothing from a process per step (see jobs.py).
        executor=dg.in_process_executor,
        resources={
            # Trained adapters in the store are catalog models too (<base>__<recipe>).
            "catalog": CatalogResource(root=root, store_root=store),
            "store": StoreResource(root=store),
            "alerts": alerts_from_env(),
            # Where SLURM-hosted models generate; see slurm/ for the cluster profiles.
            "slurm": SlurmResource(),
            # The webserver the catalog sensor asks to reload the grid (EVAL_PIPELINE_UI_URL).
            "webserver": webserver_from_env(),
        },
    )


@dg.definitions
def catalog_definitions() -> dg.Definitions:
    """The definitions of the catalog under the project root, with the default store.

    Collected by ``dg.load_from_defs_folder`` (``eval_pipeline/definitions.py``).
    """
    return build_definitions()
