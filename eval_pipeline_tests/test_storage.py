"""The Parquet store: layout, schema checks, atomic writes."""

from __future__ import annotations

import os

import polars as pl
import pytest

from eval_pipeline.core.schemas import LEADERBOARD, SCORES
from eval_pipeline.storage import Store, StoreSchemaError


def _scores(n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": ["m"] * n,
            "dataset": ["d"] * n,
            "prompt_version": ["p@1"] * n,
            "sample_id": [f"s{i}" for i in range(n)],
            "metric": ["acc"] * n,
            "value": [1.0, None, 0.0][:n],
            "detail": [""] * n,
            "request_hash": ["h"] * n,
            "code_version": ["v"] * n,
        },
        schema=SCORES,
    )


def test_paths_are_hive_style_by_dataset_and_model(tmp_path):
    store = Store(tmp_path)
    assert (
        store.path("scores", "qa", "m1") == tmp_path / "scores/dataset=qa/model=m1/part-0.parquet"
    )
    assert (
        store.path("dataset_samples", "qa")
        == tmp_path / "dataset_samples/dataset=qa/part-0.parquet"
    )
    assert store.path("leaderboard") == tmp_path / "leaderboard/part-0.parquet"
    with pytest.raises(ValueError, match="needs a model"):
        store.path("scores", "qa")


def test_write_then_read_round_trips_and_leaves_no_temporary_files(tmp_path):
    store = Store(tmp_path)
    path = store.write("scores", _scores(), "d", "m")
    assert store.read("scores", "d", "m").equals(_scores())
    assert sorted(os.listdir(path.parent)) == ["part-0.parquet"]


def test_a_frame_with_a_missing_column_is_refused_and_nothing_is_written(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(StoreSchemaError, match="missing: \\['detail'\\]"):
        store.write("scores", _scores().drop("detail"), "d", "m")
    assert not store.exists("scores", "d", "m")


def test_a_column_of_the_wrong_type_is_refused(tmp_path):
    bad = _scores().with_columns(pl.lit("high").alias("value"))
    with pytest.raises(StoreSchemaError, match="scores"):
        Store(tmp_path).write("scores", bad, "d", "m")


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.write("scores", _scores(), "d", "m")

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write("scores", _scores(2), "d", "m")
    monkeypatch.undo()
    assert store.read("scores", "d", "m").height == 3
    assert sorted(os.listdir(store.path("scores", "d", "m").parent)) == ["part-0.parquet"]


def test_scan_of_an_empty_table_has_the_table_schema(tmp_path):
    frame = Store(tmp_path).scan("leaderboard").collect()
    assert frame.height == 0 and frame.schema == LEADERBOARD
