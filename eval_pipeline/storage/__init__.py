"""The Parquet store: the only code that knows where result files live.

It also owns the project's one atomic write (:func:`atomic_path`,
:func:`atomic_write_bytes`, :func:`atomic_write_text`): every file the project rewrites
in place goes through it, so readers never see half a file and killed writers leave no
lasting debris.

Every write of a model x dataset table is kept in the run history, addressable by run id
and time (:meth:`Store.history`); retention settings prune it.
"""

from eval_pipeline.storage._atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    stale_temporaries,
)
from eval_pipeline.storage._history import (
    KEEP_DAYS_ENV,
    KEEP_RUNS_ENV,
    HistoryEntry,
    HistoryError,
    Retention,
    new_run_id,
    parse_when,
)
from eval_pipeline.storage._store import (
    HISTORY_TABLES,
    Store,
    StoreSchemaError,
    conform,
    default_store_root,
    with_missing_columns,
)

__all__ = [
    "HISTORY_TABLES",
    "KEEP_DAYS_ENV",
    "KEEP_RUNS_ENV",
    "HistoryEntry",
    "HistoryError",
    "Retention",
    "Store",
    "StoreSchemaError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "conform",
    "default_store_root",
    "with_missing_columns",
    "new_run_id",
    "parse_when",
    "remove_stale_temporaries",
    "stale_temporaries",
]
