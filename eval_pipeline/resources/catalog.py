"""The ``catalog`` resource: models, datasets and prompts of one project root."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import dagster as dg

from eval_pipeline.catalog import Catalog, load_catalog


def default_project_root() -> str:
    """``$EVAL_PIPELINE_ROOT``, else the checkout this package lives in, else the cwd."""
    env = os.environ.get("EVAL_PIPELINE_ROOT")
    if env:
        return str(Path(env).resolve())
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "models.yaml").exists():
        return str(checkout)
    return str(Path.cwd())


@cache
def _load(root: str, mtime_key: tuple) -> Catalog:
    return load_catalog(root, load_rows=False)


class CatalogResource(dg.ConfigurableResource):
    """Reads ``models.yaml``, ``datasets/`` and ``prompts/`` under ``root``."""

    root: str

    def load(self) -> Catalog:
        # Keyed on file modification times so an edited prompt is seen without a restart.
        base = Path(self.root)
        files = [base / "models.yaml", *base.glob("datasets/*/*"), *base.glob("prompts/*")]
        key = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in files if p.exists()))
        return _load(str(base), key)
