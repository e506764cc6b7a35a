"""Dagster resources over the plain layers below (catalog, store)."""

from eval_pipeline.catalog import default_project_root
from eval_pipeline.resources.catalog import CatalogResource
from eval_pipeline.resources.store import StoreResource
from eval_pipeline.storage import default_store_root

__all__ = ["CatalogResource", "StoreResource", "default_project_root", "default_store_root"]
