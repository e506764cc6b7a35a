"""The ``store`` resource: where the Parquet results live."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.storage import Store


class StoreResource(dg.ConfigurableResource):
    """The Parquet store rooted at ``root`` (a local path or a shared filesystem mount)."""

    root: str

    def get(self) -> Store:
        return Store(self.root)
