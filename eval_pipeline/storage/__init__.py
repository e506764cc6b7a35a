"""The Parquet store: the only code that knows where result files live."""

from eval_pipeline.storage._store import Store, StoreSchemaError

__all__ = ["Store", "StoreSchemaError"]
