"""Hive-style Parquet layout with schema-checked, atomic writes.

Layout under one root::

    <root>/<table>/dataset=<d>/model=<m>/part-0.parquet   model x dataset tables
    <root>/<table>/dataset=<d>/part-0.parquet             per-dataset tables
    <root>/<table>/part-0.parquet                         global tables

``polars.scan_parquet(f"{root}/generations/**/*.parquet", hive_partitioning=True)`` reads
every partition of a table at once.

Every write of a model x dataset table is also kept in the run history (see
:mod:`eval_pipeline.storage._history`), under ``<root>/history/``, outside the table
folders, so scans of the latest results never count a history file. The latest file is
a hard link to its history entry (a copy where the filesystem has no hard links).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.schemas import GLOBAL_TABLES, PER_DATASET_TABLES, TABLES
from eval_pipeline.storage._atomic import atomic_path, remove_stale_temporaries
from eval_pipeline.storage._history import (
    HISTORY_DIR,
    HistoryEntry,
    Retention,
    check_run_id,
    entries_in,
    entry_name,
    new_run_id,
)

PART_FILE = "part-0.parquet"
# Tables whose every write is kept in the run history: the model x dataset ones.
HISTORY_TABLES = frozenset(TABLES) - PER_DATASET_TABLES - GLOBAL_TABLES


def default_store_root(project_root: str) -> str:
    """``$EVAL_PIPELINE_STORE``, else ``<project root>/.eval_store``."""
    return os.environ.get("EVAL_PIPELINE_STORE") or str(Path(project_root) / ".eval_store")


class StoreSchemaError(EvalPipelineError):
    """A frame does not match its table's schema."""


class Store:
    """Reads and writes the project's Parquet tables under ``root``.

    Args:
        root: The store's folder.
        run_id: The run that writes through this store (Dagster's run id in a Dagster
            step); history entries are filed under it. None: each write gets a generated
            ``local-<time>-<random>`` id. :meth:`with_run` binds one to a copy.
        keep_runs: Keep the newest N runs per table and partition in the history (0: keep
            no history). Default: ``$EVAL_PIPELINE_HISTORY_KEEP_RUNS``, else no limit.
        keep_days: Keep runs written within D days (the newest run is always kept).
            Default: ``$EVAL_PIPELINE_HISTORY_KEEP_DAYS``, else no limit.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        run_id: str | None = None,
        keep_runs: int | None = None,
        keep_days: float | None = None,
    ):
        self.root = Path(root).expanduser().resolve()
        self.run_id = check_run_id(run_id) if run_id is not None else None
        self.retention = Retention.from_env(keep_runs, keep_days)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def with_run(self, run_id: str) -> Store:
        """This store, writing under ``run_id`` (e.g. ``context.run_id`` in an asset)."""
        return Store(
            self.root,
            run_id=run_id,
            keep_runs=self.retention.keep_runs,
            keep_days=self.retention.keep_days,
        )

    # ------------------------------------------------------------------ layout
    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {sorted(TABLES)}")
        return self.root / table

    def path(self, table: str, dataset: str | None = None, model: str | None = None) -> Path:
        """Where one partition of ``table`` lives."""
        base = self.table_dir(table)
        if table in GLOBAL_TABLES:
            return base / PART_FILE
        if dataset is None:
            raise ValueError(f"table {table!r} needs a dataset")
        base = base / f"dataset={dataset}"
        if table in PER_DATASET_TABLES:
            return base / PART_FILE
        if model is None:
            raise ValueError(f"table {table!r} needs a model")
        return base / f"model={model}" / PART_FILE

    def glob(self, table: str) -> str:
        """A glob matching every file of ``table`` (for ``pl.scan_parquet``)."""
        if table in GLOBAL_TABLES:
            return str(self.table_dir(table) / PART_FILE)
        return str(self.table_dir(table) / "**" / "*.parquet")

    @property
    def cache_dir(self) -> Path:
        """Where the response cache lives (see ``eval_pipeline.engine``)."""
        return self.root / "cache"

    @property
    def runs_dir(self) -> Path:
        """Scratch space for work handed to other processes (SLURM jobs)."""
        return self.root / "runs"

    @property
    def rate_leases_dir(self) -> Path:
        """Where processes running one model at once hold their rate leases."""
        return self.runs_dir / "rates"

    def budget_ledger(self, scope: str) -> Path:
        """The spend ledger shared by every partition, judge and job of run ``scope``."""
        return self.runs_dir / "budgets" / f"{scope}.json"

    @property
    def reports_dir(self) -> Path:
        """Rendered reports: the regression report, the HTML leaderboard report."""
        return self.root / "reports"

    @property
    def history_dir(self) -> Path:
        """Every kept write of the model x dataset tables (see :meth:`history`)."""
        return self.root / HISTORY_DIR

    def history_folder(self, table: str, dataset: str, model: str) -> Path:
        """The folder of one partition's history of ``table``."""
        self.table_dir(table)  # an unknown table raises here
        return self.history_dir / table / f"dataset={dataset}" / f"model={model}"

    @property
    def calibration_dir(self) -> Path:
        """Fitted judge calibrations, one JSON document per judge x rubric."""
        return self.root / "calibration"

    def calibration_path(self, judge: str, rubric: str) -> Path:
        """Where the calibration of ``judge`` on ``rubric`` lives."""
        return self.calibration_dir / f"judge={judge}" / f"rubric={rubric}.json"

    def calibration_pairs(self) -> list[tuple[str, str]]:
        """Every (judge, rubric) with a stored calibration, sorted."""
        files = self.calibration_dir.glob("judge=*/rubric=*.json")
        return sorted(
            (f.parent.name.removeprefix("judge="), f.stem.removeprefix("rubric=")) for f in files
        )

    # ------------------------------------------------------------------ io
    def exists(self, table: str, dataset: str | None = None, model: str | None = None) -> bool:
        return self.path(table, dataset, model).exists()

    def write(
        self,
        table: str,
        frame: pl.DataFrame,
        dataset: str | None = None,
        model: str | None = None,
        *,
        run_id: str | None = None,
    ) -> Path:
        """Validate ``frame`` against the table schema and write it atomically.

        The file appears complete or not at all (:func:`~eval_pipeline.storage.atomic_path`):
        it is written to a hidden temporary file in the same directory, which
        ``*.parquet`` globs skip, and renamed over the old one. Temporary files that
        killed writers left for the same file are removed.

        A model x dataset table's write is also kept in the run history under
        ``run_id`` (default: the store's :attr:`run_id`, else a generated id), and the
        partition's history is pruned to the retention setting.

        Returns:
            The latest file's path (the same as :meth:`path`).
        """
        frame = conform(table, frame)
        target = self.path(table, dataset, model)
        if table not in HISTORY_TABLES or not self.retention.enabled:
            with atomic_path(target) as tmp:
                frame.write_parquet(tmp, compression="zstd", statistics=True)
            return target
        run = check_run_id(run_id) if run_id is not None else self.run_id or new_run_id()
        # self.path refused a partition table without its dataset and model.
        assert dataset is not None and model is not None
        folder = self.history_folder(table, dataset, model)
        now = datetime.now(UTC)
        entry = folder / entry_name(run, now)
        with atomic_path(target) as tmp:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            # The entry is the same file under a second name, written before the latest
            # is renamed into place: no other writer's file can slip in between.
            with atomic_path(entry) as entry_tmp:
                _link_or_copy(tmp, entry_tmp)
        for old in entries_in(folder, table):
            # One file per run: a second write of the same run replaces its first.
            if old.run_id == run and old.path != entry:
                old.path.unlink(missing_ok=True)
        self.prune_history(table, dataset, model, now=now)
        return target

    # ------------------------------------------------------------------ history
    def history(self, table: str, dataset: str, model: str) -> list[HistoryEntry]:
        """Every kept write of one partition of ``table``, oldest first."""
        return entries_in(self.history_folder(table, dataset, model), table)

    def history_partitions(self, table: str) -> list[tuple[str, str]]:
        """Every ``(dataset, model)`` with history of ``table``, sorted."""
        base = self.history_dir / table
        if not base.exists():
            return []
        return sorted(
            (d.name.removeprefix("dataset="), m.name.removeprefix("model="))
            for d in base.glob("dataset=*")
            for m in d.glob("model=*")
            if m.is_dir()
        )

    def history_entries(self, table: str) -> list[HistoryEntry]:
        """Every kept write of every partition of ``table``, by partition then time."""
        return [e for d, m in self.history_partitions(table) for e in self.history(table, d, m)]

    def prune_history(
        self, table: str, dataset: str, model: str, *, now: datetime | None = None
    ) -> list[Path]:
        """Remove the partition's history entries the retention setting no longer keeps."""
        entries = self.history(table, dataset, model)
        removed = []
        for entry in self.retention.expired(entries, now or datetime.now(UTC)):
            entry.path.unlink(missing_ok=True)
            removed.append(entry.path)
        # Each entry has a name of its own, so no later write of the same name would
        # sweep up a killed writer's temporary file: sweep the folder here instead.
        folder = self.history_folder(table, dataset, model)
        for name in os.listdir(folder) if folder.exists() else []:
            if name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 5:
                remove_stale_temporaries(folder / name[1:].rsplit(".", 4)[0])
        return removed

    def read_entry(self, entry: HistoryEntry) -> pl.DataFrame:
        """The rows of one history entry."""
        return with_missing_columns(entry.table, pl.read_parquet(entry.path))

    def read(
        self, table: str, dataset: str | None = None, model: str | None = None
    ) -> pl.DataFrame:
        """Read one partition; raises FileNotFoundError naming the path when it is missing."""
        path = self.path(table, dataset, model)
        if not path.exists():
            raise FileNotFoundError(f"no {table} for dataset={dataset} model={model}: {path}")
        return with_missing_columns(table, pl.read_parquet(path))

    def read_optional(
        self, table: str, dataset: str | None = None, model: str | None = None
    ) -> pl.DataFrame | None:
        path = self.path(table, dataset, model)
        return with_missing_columns(table, pl.read_parquet(path)) if path.exists() else None

    def scan(self, table: str) -> pl.LazyFrame:
        """Scan every partition of ``table`` (an empty frame of the right schema if none)."""
        directory = self.table_dir(table)
        if not directory.exists() or not any(directory.rglob("*.parquet")):
            return pl.LazyFrame(schema=TABLES[table])
        # Files written before a column existed read with it null.
        return pl.scan_parquet(
            self.glob(table),
            schema=TABLES[table],
            missing_columns="insert",
            hive_partitioning=False,
        )


def _link_or_copy(source: Path, tmp: Path) -> None:
    # ``tmp`` was created empty by atomic_path; it becomes a second name of ``source``.
    tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:  # no hard links here (some network filesystems): a copy instead
        shutil.copyfile(source, tmp)


def with_missing_columns(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the schema's columns it lacks added as nulls (files written earlier)."""
    schema = TABLES.get(table)
    if schema is None:
        return frame
    missing = [pl.lit(None, dtype=t).alias(n) for n, t in schema.items() if n not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the table's columns, order and types, or raise."""
    schema = TABLES[table]
    missing = [c for c in schema.names() if c not in frame.columns]
    extra = [c for c in frame.columns if c not in schema]
    if missing or extra:
        raise StoreSchemaError(
            f"{table}: frame does not match the schema (missing: {missing}, unexpected: {extra})"
        )
    try:
        return frame.select(
            [pl.col(name).cast(dtype, strict=True) for name, dtype in schema.items()]
        )
    except Exception as exc:  # polars raises several error types for bad casts
        raise StoreSchemaError(f"{table}: {exc}") from exc
