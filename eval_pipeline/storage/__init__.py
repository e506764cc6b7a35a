"""The Parquet store: the only code that knows where result files live.

It also owns the project's one atomic write (:func:`atomic_path`,
:func:`atomic_write_bytes`, :func:`atomic_write_text`): every file the project rewrites
in place goes through it, so readers never see half a file and killed writers leave no
lasting debris.
"""

from eval_pipeline.storage._atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    stale_temporaries,
)
from eval_pipeline.storage._store import Store, StoreSchemaError, conform

__all__ = [
    "Store",
    "StoreSchemaError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "conform",
    "remove_stale_temporaries",
    "stale_temporaries",
]
