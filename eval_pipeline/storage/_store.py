"""Hive-style Parquet layout with schema-checked, atomic writes.

Layout under one root::

    <root>/<table>/dataset=<d>/model=<m>/part-0.parquet   model x dataset tables
    <root>/<table>/dataset=<d>/part-0.parquet             per-dataset tables
    <root>/<table>/part-0.parquet                         global tables

``polars.scan_parquet(f"{root}/generations/**/*.parquet", hive_partitioning=True)`` reads
every partition of a table at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.schemas import GLOBAL_TABLES, PER_DATASET_TABLES, TABLES
from eval_pipeline.storage._atomic import atomic_path

PART_FILE = "part-0.parquet"


class StoreSchemaError(EvalPipelineError):
    """A frame does not match its table's schema."""


class Store:
    """Reads and writes the project's Parquet tables under ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

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
    ) -> Path:
        """Validate ``frame`` against the table schema and write it atomically.

        The file appears complete or not at all (:func:`~eval_pipeline.storage.atomic_path`):
        it is written to a hidden temporary file in the same directory, which
        ``*.parquet`` globs skip, and renamed over the old one. Temporary files that
        killed writers left for the same file are removed.
        """
        frame = conform(table, frame)
        target = self.path(table, dataset, model)
        with atomic_path(target) as tmp:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
        return target

    def read(
        self, table: str, dataset: str | None = None, model: str | None = None
    ) -> pl.DataFrame:
        """Read one partition; raises FileNotFoundError naming the path when it is missing."""
        path = self.path(table, dataset, model)
        if not path.exists():
            raise FileNotFoundError(f"no {table} for dataset={dataset} model={model}: {path}")
        return pl.read_parquet(path)

    def read_optional(
        self, table: str, dataset: str | None = None, model: str | None = None
    ) -> pl.DataFrame | None:
        path = self.path(table, dataset, model)
        return pl.read_parquet(path) if path.exists() else None

    def scan(self, table: str) -> pl.LazyFrame:
        """Scan every partition of ``table`` (an empty frame of the right schema if none)."""
        directory = self.table_dir(table)
        if not directory.exists() or not any(directory.rglob("*.parquet")):
            return pl.LazyFrame(schema=TABLES[table])
        return pl.scan_parquet(self.glob(table))


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
