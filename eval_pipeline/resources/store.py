"""The ``store`` resource: where the Parquet results live."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from eval_pipeline.storage import Store


def default_store_root(project_root: str) -> str:
    """``$EVAL_PIPELINE_STORE``, else ``<project root>/.eval_store``."""
    return os.environ.get("EVAL_PIPELINE_STORE") or str(Path(project_root) / ".eval_store")


class StoreResource(dg.ConfigurableResource):
    """The Parquet store rooted at ``root`` (a local path or a shared filesystem mount)."""

    root: str

    def get(self) -> Store:
        return Store(self.root)
