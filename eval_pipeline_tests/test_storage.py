"""The Parquet store: layout, schema checks, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import pytest

from eval_pipeline.core.schemas import LEADERBOARD, SCORES
from eval_pipeline.storage import (
    Store,
    StoreSchemaError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
)
from eval_pipeline.storage._atomic import STALE_AFTER_S
from eval_pipeline_tests import processes


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
            "answer_mode": ["generate"] * n,
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


# A writer that stops half-way through writing a partition, as if killed mid-write.
_STALLED_WRITER = """
import sys, time
import polars as pl
from eval_pipeline.storage import Store

def stall(self, path, **kwargs):
    with open(path, "wb") as fh:
        fh.write(b"PAR1 half a file")
    print("writing", flush=True)
    time.sleep(120)

pl.DataFrame.write_parquet = stall
frame = pl.read_parquet(sys.argv[2])
Store(sys.argv[1]).write("scores", frame, "d", "m")
"""


@contextmanager
def _stalled_writer(tmp_path, store_root) -> Iterator[subprocess.Popen]:
    source = tmp_path / "frame.parquet"
    _scores().write_parquet(source)
    with processes.started(
        [sys.executable, "-c", _STALLED_WRITER, str(store_root), str(source)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout.readline().strip() == "writing"
        yield proc


def _hidden(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith("."))


def test_a_writer_killed_mid_write_leaves_no_temporary_file_after_the_next_write(tmp_path):
    store = Store(tmp_path / "store")
    folder = store.path("scores", "d", "m").parent
    with _stalled_writer(tmp_path, store.root) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(_hidden(folder)) == 1  # the killed writer's half-written file
    store.write("scores", _scores(2), "d", "m")
    assert _hidden(folder) == []
    assert store.read("scores", "d", "m").height == 2


def test_a_live_writers_temporary_file_survives_another_write_of_the_same_target(tmp_path):
    store = Store(tmp_path / "store")
    folder = store.path("scores", "d", "m").parent
    with _stalled_writer(tmp_path, store.root):
        store.write("scores", _scores(2), "d", "m")
        assert len(_hidden(folder)) == 1


def test_another_hosts_temporary_file_is_removed_only_once_it_is_old(tmp_path):
    target = tmp_path / "report.json"
    fresh = tmp_path / ".report.json.node-7.4242.0a1b2c3d.tmp"
    old = tmp_path / ".report.json.node-7.4243.0a1b2c3e.tmp"
    other_target = tmp_path / ".other.json.node-7.4244.0a1b2c3f.tmp"
    for path in (fresh, old, other_target):
        path.write_bytes(b"partial")
    long_ago = time.time() - STALE_AFTER_S - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(other_target, (long_ago, long_ago))
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert fresh.exists() and other_target.exists()
    assert not old.exists()


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "notes.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("second, half")
        raise RuntimeError("boom")
    assert target.read_text() == "first"
    assert os.listdir(target.parent) == ["notes.txt"]
    assert atomic_write_bytes(target, b"\x00\x01") == target
    assert target.read_bytes() == b"\x00\x01"
