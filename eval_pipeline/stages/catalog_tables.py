"""Stages that turn the catalog into tables: prompt versions and normalized samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog, Dataset
from eval_pipeline.core.hashing import content_hash, stable_json
from eval_pipeline.core.schemas import DATASET_SAMPLES, PROMPT_VERSIONS
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class TableReport:
    path: Path
    rows: int
    version: str


def build_prompt_versions(catalog: Catalog, store: Store, dataset: str) -> TableReport:
    """Write the prompt template used by ``dataset`` with its content-hash version."""
    ds = catalog.dataset(dataset)
    prompt = ds.prompt
    frame = pl.DataFrame(
        {
            "dataset": [dataset],
            "prompt_version": [prompt.version],
            "prompt_name": [prompt.name],
            "template_path": [f"prompts/{prompt.path.name}"],
            "template_text": [prompt.text],
            "content_hash": [prompt.content_hash],
        },
        schema=PROMPT_VERSIONS,
    )
    path = store.write("prompt_versions", frame, dataset=dataset)
    return TableReport(path=path, rows=frame.height, version=prompt.version)


def build_dataset_samples(catalog: Catalog, store: Store, dataset: str) -> TableReport:
    """Write the dataset's normalized rows with their row hashes and the dataset version."""
    return _write_samples(store, "dataset_samples", catalog.dataset(dataset))


def build_train_samples(catalog: Catalog, store: Store, dataset: str) -> TableReport:
    """Write the dataset's ``train`` split, normalized like its test rows, with its version.

    What fine-tuning recipes on ``dataset`` train on (``train_samples/dataset=<d>/``).
    """
    return _write_samples(store, "train_samples", catalog.train_split(dataset))


def _write_samples(store: Store, table: str, ds: Dataset) -> TableReport:
    fields = [stable_json(r["fields"]) for r in ds.rows]
    frame = pl.DataFrame(
        {
            "dataset": [ds.name] * len(ds.rows),
            "sample_id": [r["sample_id"] for r in ds.rows],
            "dataset_version": [ds.version] * len(ds.rows),
            "fields": fields,
            "target": [r["target"] for r in ds.rows],
            "tags": [list(r["tags"]) for r in ds.rows],
            "row_hash": [_row_hash(f, r) for f, r in zip(fields, ds.rows, strict=True)],
            "targets": [list(r["targets"]) for r in ds.rows],
            "choices": [list(r["choices"]) for r in ds.rows],
        },
        schema=DATASET_SAMPLES,
    )
    path = store.write(table, frame, dataset=ds.name)
    return TableReport(path=path, rows=frame.height, version=ds.version)


def _row_hash(fields: str, row: dict) -> str:
    # Choices and extra targets join the hash only where present, so rows of datasets
    # that have neither keep the hashes they had.
    key: dict = {"fields": fields, "target": row["target"]}
    if row["choices"]:
        key["choices"] = row["choices"]
    if row["targets"] != [row["target"]]:
        key["targets"] = row["targets"]
    return content_hash(key, 16)
