"""Materializing real partitions with the fake provider on a temporary store."""

from __future__ import annotations

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eval_pipeline.core.schemas import VOLATILE_COLUMNS
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.stages import checks
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize, report
from eval_pipeline_tests.projects import make_project


@pytest.fixture
def small_project(tmp_path):
    return make_project(tmp_path / "project", datasets=("qa", "json-extract"))


def test_one_partition_materializes_every_asset_into_hive_parquet(small_project, store_root):
    result = materialize(small_project, store_root, "qa|fake-good", sample_limit=12)
    assert result.success
    store = Store(store_root)
    gens = store.read("generations", dataset="qa", model="fake-good")
    assert gens.height == 12
    assert gens.columns[:4] == ["model", "dataset", "prompt_version", "sample_id"]
    assert gens["error"].null_count() == 12
    assert gens["prompt_version"].str.starts_with("qa@").all()
    assert (gens["request_hash"].str.len_chars() == 24).all()
    # The fake model answers the reference, so every applicable score is perfect.
    scores = store.read("scores", dataset="qa", model="fake-good")
    assert set(scores["metric"]) == {"answer_match", "numeric_match"}
    answer = scores.filter(pl.col("metric") == "answer_match")["value"]
    assert answer.to_list() == [1.0] * 12
    aggregates = store.read("aggregates", dataset="qa", model="fake-good")
    row = aggregates.filter(pl.col("metric") == "answer_match").row(0, named=True)
    assert (row["n"], row["mean"], row["ci_low"], row["ci_high"]) == (12, 1.0, 1.0, 1.0)
    # Pricing: 1 $/M input and 2 $/M output tokens.
    expected_cost = (gens["input_tokens"].sum() * 1.0 + gens["output_tokens"].sum() * 2.0) / 1e6
    assert row["cost_usd"] == pytest.approx(expected_cost)
    board = store.read("leaderboard")
    assert board.select("model", "dataset", "metric").rows() == [
        ("fake-good", "qa", "answer_match")
    ]
    meta = materialization_metadata(result, "generations")
    assert (meta["dagster/row_count"], meta["new_rows"], meta["reused_rows"]) == (12, 12, 0)
    # The per-partition run leaves the whole-store reports to reporting_job.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {
        "prompt_versions",
        "dataset_samples",
        "generations",
        "judgements",
        "scores",
        "aggregates",
    }
    assert (
        "| fake-good | qa | answer_match | generated | 12 | 1.000 |"
        in materialization_metadata(report(small_project, store_root), "leaderboard")["leaderboard"]
    )


def test_scan_parquet_with_hive_partitioning_reads_every_partition(small_project, store_root):
    for key in ("qa|fake-good", "qa|fake-echo", "json-extract|fake-good"):
        materialize(small_project, store_root, key, sample_limit=4)
    frame = pl.scan_parquet(
        f"{store_root}/generations/**/*.parquet", hive_partitioning=True
    ).collect()
    assert frame.height == 12
    assert sorted(set(zip(frame["dataset"], frame["model"], strict=True))) == [
        ("json-extract", "fake-good"),
        ("qa", "fake-echo"),
        ("qa", "fake-good"),
    ]


def test_rerun_with_unchanged_inputs_makes_no_model_calls(small_project, store_root):
    materialize(small_project, store_root, "qa|fake-good", sample_limit=10)
    assert calls_for("fake-good") == 10
    result = materialize(small_project, store_root, "qa|fake-good", sample_limit=10)
    assert calls_for("fake-good") == 10
    meta = materialization_metadata(result, "generations")
    assert (meta["new_rows"], meta["reused_rows"], meta["model_calls"]) == (0, 10, 0)


def test_no_cache_switch_calls_the_model_again(small_project, store_root):
    materialize(small_project, store_root, "qa|fake-good", sample_limit=5)
    materialize(small_project, store_root, "qa|fake-good", sample_limit=5, use_cache=False)
    assert calls_for("fake-good") == 10


def test_editing_one_prompt_branch_regenerates_only_the_rows_it_renders(small_project, store_root):
    materialize(small_project, store_root, "qa|fake-good", sample_limit=30)
    materialize(small_project, store_root, "json-extract|fake-good", sample_limit=10)
    store = Store(store_root)
    before = store.read("generations", dataset="qa", model="fake-good")
    arithmetic = sum(json.loads(m)[0]["content"].endswith("number.") for m in before["messages"])
    assert 0 < arithmetic < 30
    prompt = small_project / "prompts" / "qa.jinja"
    prompt.write_text(
        prompt.read_text().replace("Reply with just the number.", "Answer with a number only.")
    )
    calls = calls_for("fake-good")
    result = materialize(small_project, store_root, "qa|fake-good", sample_limit=30)
    assert calls_for("fake-good") - calls == arithmetic
    meta = materialization_metadata(result, "generations")
    assert (meta["new_rows"], meta["reused_rows"]) == (arithmetic, 30 - arithmetic)
    after = store.read("generations", dataset="qa", model="fake-good")
    assert after["prompt_version"][0] != before["prompt_version"][0]
    # The other dataset renders another prompt: nothing to regenerate there.
    calls = calls_for("fake-good")
    materialize(small_project, store_root, "json-extract|fake-good", sample_limit=10)
    assert calls_for("fake-good") == calls


def test_same_inputs_give_identical_rows_apart_from_volatile_columns(small_project, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    materialize(small_project, first, "json-extract|fake-good", sample_limit=8)
    materialize(small_project, second, "json-extract|fake-good", sample_limit=8)
    for table in ("generations", "scores", "aggregates"):
        a = Store(first).read(table, dataset="json-extract", model="fake-good")
        b = Store(second).read(table, dataset="json-extract", model="fake-good")
        drop = list(VOLATILE_COLUMNS.get(table, ()))
        assert_frame_equal(a.drop(drop), b.drop(drop))


def test_generations_complete_check_fails_when_a_row_is_missing(small_project, store_root):
    materialize(small_project, store_root, "qa|fake-good", sample_limit=6)
    store = Store(store_root)
    assert checks.generations_complete(store, "qa", "fake-good").passed
    gens = store.read("generations", dataset="qa", model="fake-good")
    store.write(
        "generations", gens.filter(pl.col("sample_id") != gens["sample_id"][2]), "qa", "fake-good"
    )
    outcome = checks.generations_complete(store, "qa", "fake-good")
    assert not outcome.passed
    assert "1 samples without a row" in outcome.description


def test_provider_errors_are_recorded_and_fail_the_blocking_check(tmp_path, store_root):
    models = {
        "models": [
            {
                "slug": "fake-flaky",
                "provider": "fake",
                "model_id": "fake/flaky",
                "options": {"fail_samples": ["qa-0002"]},
            }
        ]
    }
    project = make_project(tmp_path / "p", models=models, datasets=("qa",))
    result = materialize(project, store_root, "qa|fake-flaky", sample_limit=4, raise_on_error=False)
    gens = Store(store_root).read("generations", dataset="qa", model="fake-flaky")
    assert (
        gens.filter(pl.col("sample_id") == "qa-0002")["error"][0]
        == "fake provider: scripted failure"
    )
    checks_run = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks_run["generations_complete"] is False
    # Blocking: scores are not materialized from a partition with a failed check.
    assert not Store(store_root).exists("scores", dataset="qa", model="fake-flaky")
