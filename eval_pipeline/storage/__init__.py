"""The Parquet store: the only code that knows where result files live."""

from eval_pipeline.storage._atomic import atomic_path, atomic_write_bytes, atomic_write_text
from eval_pipeline.storage._store import Store, StoreSchemaError, conform

__all__ = [
    "Store",
    "StoreSchemaError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "conform",
]
