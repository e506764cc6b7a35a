"""Dagster resources over the plain layers below (catalog, store)."""

from eval_pipeline.resources.catalog import CatalogResource, default_project_root
from eval_pipeline.resources.store import StoreResource, default_store_root

__all__ = ["CatalogResource", "StoreResource", "default_project_root", "default_store_root"]
