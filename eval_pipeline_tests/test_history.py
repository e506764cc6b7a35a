"""Run history: every write kept by run id and time, the latest where it always was.

Retention prunes old runs; ``compare`` and ``history`` address runs as ``run:<id>``,
``latest``, ``previous`` and ``@<date>``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from eval_pipeline.cli import main
from eval_pipeline.core.schemas import TABLES
from eval_pipeline.regression import BaselineError, compare_runs, resolve_run
from eval_pipeline.report import judge_spend
from eval_pipeline.scoring import stats
from eval_pipeline.storage import KEEP_RUNS_ENV, HistoryError, Store
from eval_pipeline.storage._history import entry_name


def _scores(values: list[float], model: str = "m", dataset: str = "d") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": model,
            "dataset": dataset,
            "prompt_version": "p@1",
            "sample_id": [f"s{i:03d}" for i in range(len(values))],
            "metric": "acc",
            "value": values,
            "detail": "",
            "request_hash": "h",
            "code_version": "c",
            "answer_mode": "generate",
        }
    )


def _aggregates(values: list[float]) -> pl.DataFrame:
    low, high = stats.bootstrap_ci(values, seed=1)
    row = {name: None for name in TABLES["aggregates"].names()}
    row.update(
        model="m",
        dataset="d",
        prompt_version="p@1",
        metric="acc",
        n=len(values),
        mean=stats.mean(values),
        ci_low=low,
        ci_high=high,
        cost_usd=0.01,
        output_tokens=5,
    )
    return pl.DataFrame([row], schema=TABLES["aggregates"])


def _age(store: Store, table: str, run_id: str, days: float) -> None:
    """Pretend ``run_id``'s entry was written ``days`` ago (renames it)."""
    (entry,) = [e for e in store.history(table, "d", "m") if e.run_id == run_id]
    when = datetime.now(UTC) - timedelta(days=days)
    entry.path.rename(entry.path.with_name(entry_name(run_id, when)))


def test_two_writes_are_two_runs_addressable_by_id_and_the_latest_is_the_second(tmp_path):
    store = Store(tmp_path)
    first = store.write("scores", _scores([1.0, 1.0]), "d", "m", run_id="run-a")
    second = store.write("scores", _scores([1.0, 0.0, 0.0]), "d", "m", run_id="run-b")
    assert first == second == tmp_path / "scores/dataset=d/model=m/part-0.parquet"
    assert store.read("scores", "d", "m")["value"].to_list() == [1.0, 0.0, 0.0]
    runs = store.history("scores", "d", "m")
    assert [e.run_id for e in runs] == ["run-a", "run-b"]
    assert runs[0].written_at <= runs[1].written_at
    assert store.read_entry(runs[0])["value"].to_list() == [1.0, 1.0]
    # The table scans see the latest only: history lives outside the table's folder.
    assert store.scan("scores").collect().height == 3
    assert pl.scan_parquet(store.glob("scores")).collect().height == 3
    assert not list(store.table_dir("scores").rglob("*--*.parquet"))


def test_a_write_without_a_run_id_gets_a_generated_one_and_a_bound_store_uses_its_own(tmp_path):
    store = Store(tmp_path)
    store.write("scores", _scores([1.0]), "d", "m")
    store.with_run("dagster-run-1").write("scores", _scores([0.0]), "d", "m")
    ids = [e.run_id for e in store.history("scores", "d", "m")]
    assert ids[0].startswith("local-") and ids[1] == "dagster-run-1"


def test_a_second_write_of_the_same_run_replaces_its_entry(tmp_path):
    store = Store(tmp_path).with_run("r1")
    store.write("scores", _scores([1.0]), "d", "m")
    store.write("scores", _scores([0.0, 0.0]), "d", "m")
    (entry,) = store.history("scores", "d", "m")
    assert store.read_entry(entry).height == 2


def test_per_dataset_and_global_tables_keep_no_history(tmp_path):
    store = Store(tmp_path)
    store.write("leaderboard", pl.DataFrame(schema=TABLES["leaderboard"]))
    store.write("dataset_samples", pl.DataFrame(schema=TABLES["dataset_samples"]), "d")
    store.write("scores", _scores([1.0]), "d", "m")
    assert store.history_partitions("scores") == [("d", "m")]
    assert not (tmp_path / "history" / "leaderboard").exists()
    assert not (tmp_path / "history" / "dataset_samples").exists()


def test_retention_keeps_the_newest_n_runs(tmp_path):
    store = Store(tmp_path, keep_runs=2)
    for i in range(4):
        store.write("scores", _scores([float(i % 2)]), "d", "m", run_id=f"r{i}")
    assert [e.run_id for e in store.history("scores", "d", "m")] == ["r2", "r3"]
    assert store.read("scores", "d", "m")["value"].to_list() == [1.0]


def test_retention_by_age_prunes_old_runs_but_never_the_newest(tmp_path):
    store = Store(tmp_path, keep_days=7)
    store.write("scores", _scores([1.0]), "d", "m", run_id="old")
    _age(store, "scores", "old", days=30)
    store.write("scores", _scores([1.0]), "d", "m", run_id="recent")
    assert [e.run_id for e in store.history("scores", "d", "m")] == ["recent"]
    _age(store, "scores", "recent", days=30)
    assert store.prune_history("scores", "d", "m") == []


def test_retention_comes_from_the_environment_and_zero_turns_history_off(tmp_path, monkeypatch):
    monkeypatch.setenv(KEEP_RUNS_ENV, "1")
    store = Store(tmp_path / "a")
    for i in range(3):
        store.write("scores", _scores([1.0]), "d", "m", run_id=f"r{i}")
    assert [e.run_id for e in store.history("scores", "d", "m")] == ["r2"]
    off = Store(tmp_path / "b", keep_runs=0)
    off.write("scores", _scores([1.0]), "d", "m")
    assert off.exists("scores", "d", "m") and off.history("scores", "d", "m") == []
    monkeypatch.setenv(KEEP_RUNS_ENV, "many")
    with pytest.raises(HistoryError, match=KEEP_RUNS_ENV):
        Store(tmp_path)


def test_a_run_id_that_cannot_name_a_file_is_refused(tmp_path):
    with pytest.raises(HistoryError, match="run id"):
        Store(tmp_path).write("scores", _scores([1.0]), "d", "m", run_id="../escape")


@pytest.fixture
def three_runs(tmp_path):
    """Partition d|m written three times: all pass, then 8 of 20 fail, then all pass again."""
    store = Store(tmp_path / "store")
    store.write("scores", _scores([1.0] * 20), "d", "m", run_id="aaa111")
    _age(store, "scores", "aaa111", days=3)
    store.write("scores", _scores([0.0] * 8 + [1.0] * 12), "d", "m", run_id="bbb222")
    _age(store, "scores", "bbb222", days=1)
    store.write("scores", _scores([1.0] * 20), "d", "m", run_id="ccc333")
    return store


def test_run_references_resolve_to_the_runs_they_name(three_runs, tmp_path):
    store = three_runs
    assert resolve_run("latest", tmp_path, store).scores["value"].sum() == 20
    assert resolve_run("previous", tmp_path, store).scores["value"].sum() == 12
    assert resolve_run("run:aaa111", tmp_path, store).scores["value"].sum() == 20
    assert resolve_run("run:bbb", tmp_path, store).scores["value"].sum() == 12  # a prefix
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    assert resolve_run(f"@{two_days_ago}", tmp_path, store).name.endswith("(run:aaa111)")
    report = compare_runs(
        resolve_run("run:aaa111", tmp_path, store).scores,
        resolve_run("previous", tmp_path, store).scores,
    )
    assert [f.sample_id for f in report.comparisons[0].worse] == [f"s{i:03d}" for i in range(8)]


def test_unknown_or_malformed_run_references_name_the_problem(three_runs, tmp_path):
    with pytest.raises(BaselineError, match="no kept run 'zzz'"):
        resolve_run("run:zzz", tmp_path, three_runs)
    with pytest.raises(BaselineError, match="not an ISO date"):
        resolve_run("@yesterday", tmp_path, three_runs)
    with pytest.raises(BaselineError, match="no run .* was written by"):
        resolve_run("@2001-01-01", tmp_path, three_runs)
    with pytest.raises(BaselineError, match="before its latest"):
        resolve_run("previous", tmp_path, Store(tmp_path / "empty"))


def test_compare_and_history_commands_read_kept_runs(three_runs, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    store = str(three_runs.root)
    argv = ["--root", str(project), "--store", store]
    assert main([*argv, "compare", "run:aaa111", "run:bbb222", "--json"]) == 1
    assert '"regressed": true' in capsys.readouterr().out
    assert main([*argv, "compare", "previous", "latest"]) == 0
    assert "No regression" in capsys.readouterr().out
    assert main([*argv, "compare", "run:nope", "latest"]) == 2
    capsys.readouterr()
    # History reads aggregates: one row per run, as the aggregate stage writes them.
    for entry in three_runs.history("scores", "d", "m"):
        values = three_runs.read_entry(entry)["value"].to_list()
        three_runs.write("aggregates", _aggregates(values), "d", "m", run_id=entry.run_id)
    assert main([*argv, "history", "--model", "m", "--dataset", "d", "--metric", "acc"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "run_id" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["aaa111", "bbb222", "ccc333"]
    assert "0.6000" in rows[1]
    assert main([*argv, "history", "--model", "m", "--dataset", "none", "--metric", "acc"]) == 3


def _judgements(cost: float) -> pl.DataFrame:
    row = {name: None for name in TABLES["judgements"].names()}
    row.update(
        model="m",
        dataset="d",
        prompt_version="p@1",
        sample_id="s000",
        metric="helpfulness",
        judge="judge-1",
        status="ok",
        score=4.0,
        input_tokens=100,
        output_tokens=5,
        cost_usd=cost,
        cached=False,
    )
    return pl.DataFrame([row], schema=TABLES["judgements"])


def test_judge_spend_counts_every_kept_run_once(tmp_path):
    store = Store(tmp_path)
    store.write("judgements", _judgements(0.25), "d", "m", run_id="r1")
    store.write("judgements", _judgements(0.5), "d", "m", run_id="r2")
    spend = judge_spend(store)
    assert spend["cost_usd"].to_list() == [0.25, 0.5]
    assert spend["time"].to_list() == [e.written_at for e in store.history("judgements", "d", "m")]


def test_a_killed_writers_history_temporary_is_swept_by_the_next_write(tmp_path):
    store = Store(tmp_path)
    store.write("scores", _scores([1.0]), "d", "m", run_id="r1")
    folder = store.history_folder("scores", "d", "m")
    # What a writer killed between creating and renaming its entry leaves behind.
    dead = folder / ".20261130T000000000000Z--r0.parquet.some-host.4242.0a1b2c3d.tmp"
    dead.write_bytes(b"PAR1 half")
    old = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    os.utime(dead, (old, old))
    store.write("scores", _scores([1.0]), "d", "m", run_id="r2")
    assert not dead.exists()
    assert [e.run_id for e in store.history("scores", "d", "m")] == ["r1", "r2"]
