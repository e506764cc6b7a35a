"""The ``catalog`` resource: models, datasets and prompts of one project root."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import dagster as dg

from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.storage import Store
from eval_pipeline.training import ADAPTERS_DIR, RECIPES_FILE, load_recipes, with_adapter_models


@cache
def _load(root: str, mtime_key: tuple) -> Catalog:
    return load_catalog(root, load_rows=False)


@cache
def _with_adapters(root: str, mtime_key: tuple, store_root: str, adapters_key: tuple) -> Catalog:
    catalog = _load(root, mtime_key)
    return with_adapter_models(catalog, Store(store_root), load_recipes(root, catalog))


def _mtimes(files: Iterable[Path]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in files if p.exists()))


class CatalogResource(dg.ConfigurableResource):
    """Reads ``models.yaml``, ``datasets/`` and ``prompts/`` under ``root``.

    With ``store_root`` set, the fine-tuned models of ``recipes.yaml`` whose adapter is
    trained in that store (for the recipe as it stands) are catalog models too, named
    ``<base>__<recipe>`` (see :mod:`eval_pipeline.training`).
    """

    root: str
    store_root: str | None = None

    def load(self) -> Catalog:
        # Keyed on file modification times so an edited prompt is seen without a restart.
        base = Path(self.root)
        key = _mtimes([base / "models.yaml", *base.glob("datasets/*/*"), *base.glob("prompts/*")])
        if self.store_root is None:
            return _load(str(base), key)
        # A newly trained adapter writes a record under adapters/recipe=<r>/runs/.
        records = Path(self.store_root) / ADAPTERS_DIR
        adapters_key = _mtimes([base / RECIPES_FILE, *records.glob("recipe=*/runs/*.json")])
        return _with_adapters(str(base), key, str(Path(self.store_root)), adapters_key)
