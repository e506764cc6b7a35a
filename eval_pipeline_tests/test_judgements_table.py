"""Judging is a stage with its own table: the judge task writes it, scores only read it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.judge import VerdictsMissing, write_judgements
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.stages.catalog_tables import build_dataset_samples, build_prompt_versions
from eval_pipeline.storage import Store
from eval_pipeline_tests.judge_helpers import judged_project


def _generated(tmp_path: Path, judges: tuple[str, ...] = ("fake-judge",)) -> tuple[Catalog, Store]:
    project = judged_project(tmp_path / "p", judges=judges)
    catalog, store = load_catalog(project), Store(tmp_path / "s")
    build_prompt_versions(catalog, store, "open-qa")
    build_dataset_samples(catalog, store, "open-qa")
    stages.generate(catalog, store, "fake-good", "open-qa", sample_limit=4)
    return catalog, store


def test_scores_without_the_judge_task_fail_naming_it_and_call_no_judge(tmp_path):
    catalog, store = _generated(tmp_path)
    before = calls_for("fake-judge")
    with pytest.raises(VerdictsMissing) as error:
        stages.score(catalog, store, "fake-good", "open-qa")
    message = str(error.value)
    assert "judge 'fake-judge'" in message and "4 of 4 samples" in message
    assert "materialize the `judgements` asset of partition open-qa|fake-good" in message
    assert calls_for("fake-judge") == before
    assert not store.exists("scores", dataset="open-qa", model="fake-good")


def test_the_judge_task_writes_judgements_that_scores_read_without_calling_the_judge(tmp_path):
    catalog, store = _generated(tmp_path)
    before = calls_for("fake-judge")
    stats = stages.judge_partition(catalog, store, "fake-judge", "fake-good", "open-qa")
    assert stats.model_calls == 4 and calls_for("fake-judge") == before + 4
    judgements = store.read("judgements", dataset="open-qa", model="fake-good")
    generations = store.read("generations", dataset="open-qa", model="fake-good")
    assert judgements["judged_hash"].to_list() == generations["request_hash"].to_list()
    assert set(judgements["prompt_kind"]) == {"rubric"}
    assert judgements["judge_identity"].n_unique() == 1
    assert judgements["request_hash"].null_count() == 0
    assert judgements["input_tokens"].sum() > 0 and judgements["cost_usd"].sum() > 0
    report = stages.score(catalog, store, "fake-good", "open-qa")
    assert calls_for("fake-judge") == before + 4  # scoring asked the judge nothing
    assert report.means["helpfulness"] == 4.0


def test_a_verdict_for_an_older_generation_is_not_read_as_current(tmp_path):
    catalog, store = _generated(tmp_path)
    stages.judge_partition(catalog, store, "fake-judge", "fake-good", "open-qa")
    judgements = store.read("judgements", dataset="open-qa", model="fake-good")
    # As if the sample had been generated again from another request since it was judged.
    stale = judgements.with_columns(
        pl.when(pl.col("sample_id") == judgements["sample_id"][1])
        .then(pl.lit("0" * 16))
        .otherwise(pl.col("judged_hash"))
        .alias("judged_hash")
    )
    store.write("judgements", stale, dataset="open-qa", model="fake-good")
    with pytest.raises(VerdictsMissing, match="for 1 of 4 samples"):
        stages.score(catalog, store, "fake-good", "open-qa")


def test_each_judge_of_a_panel_replaces_only_its_own_rows(tmp_path):
    catalog, store = _generated(tmp_path, judges=("fake-judge", "fake-good"))
    stages.judge_partition(catalog, store, "fake-judge", "fake-good", "open-qa")
    stages.judge_partition(catalog, store, "fake-good", "fake-good", "open-qa")
    # Judging again with one judge keeps the other's rows.
    stages.judge_partition(catalog, store, "fake-judge", "fake-good", "open-qa")
    judgements = store.read("judgements", dataset="open-qa", model="fake-good")
    assert judgements.group_by("judge").len().sort("judge").rows() == [
        ("fake-good", 4),
        ("fake-judge", 4),
    ]
    ours = judgements.filter(pl.col("judge") == "fake-judge")
    write_judgements(store, "open-qa", "fake-good", "fake-judge", ours.head(0))
    left = store.read("judgements", dataset="open-qa", model="fake-good")
    assert set(left["judge"]) == {"fake-good"}


def test_the_judging_bench_recovers_a_planted_position_bias_at_a_tiny_size(tmp_path, monkeypatch):
    from eval_pipeline_tests.bench import judging

    monkeypatch.setenv("EVAL_PIPELINE_BENCH_DIR", str(tmp_path / "bench"))
    result = judging.run(
        bias_samples=40, mtbench_questions=0, alpacaeval_instructions=0, real=False
    )
    assert result["planted_bias_recovered"] is True
    assert 0 < result["position_bias_rate"] < 1
    assert result["pairwise_judge_calls_per_sample"] == 2
    assert result["judge_loads_in_dagster_step"] == 0
    assert result["self_consistency"] == 1.0
    assert result["mtbench_wall_s"] is None  # wall-time runs left out at this size
