"""Builds the Definitions from a catalog root and a store root."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.catalog import load_catalog
from eval_pipeline.defs.assets import build_assets
from eval_pipeline.defs.checks import build_checks
from eval_pipeline.defs.jobs import build_jobs
from eval_pipeline.defs.partitions import grid_partitions
from eval_pipeline.resources import (
    CatalogResource,
    StoreResource,
    default_project_root,
    default_store_root,
)


def build_definitions(project_root: str | None = None, store_root: str | None = None) -> dg.Definitions:
    """Assemble assets, checks, jobs and resources.

    The partition grid comes from the catalog at load time: adding a model to
    ``models.yaml`` or a dataset folder adds its partitions on the next code reload.
    """
    root = project_root or default_project_root()
    catalog = load_catalog(root, load_rows=False)
    grid = grid_partitions(catalog)
    assets = build_assets(grid)
    by_name = {a.key.to_user_string(): a for a in assets}
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(grid, by_name["generations"], by_name["scores"]),
        jobs=build_jobs(),
        resources={
            "catalog": CatalogResource(root=root),
            "store": StoreResource(root=store_root or default_store_root(root)),
        },
    )
