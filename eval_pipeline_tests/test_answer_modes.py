"""A catalog accepts any model: how each model x dataset cell answers, and where it shows."""

from __future__ import annotations

import json

import polars as pl
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.regression import compare_runs
from eval_pipeline.stages import aggregate, leaderboard_markdown
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import make_project
from eval_pipeline_tests.test_benchmarks import (
    FAKE_SCRIPTED,
    MC_ROWS,
    MC_SPEC,
    _evaluate,
    _models,
    _values,
    _write_dataset,
)

# Answers a letter for every sample: right for s1, s2 and s4, wrong for s3.
WRITER = {
    "slug": "fake-writer",
    "provider": "fake",
    "model_id": "fake/w",
    "options": {"mode": "fixed", "answers": {"s1": "B", "s2": "B", "s3": "B", "s4": "A"}},
}


def test_a_chat_only_model_next_to_a_loglikelihood_dataset_loads_and_answers_with_a_letter(
    tmp_path,
):
    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED, WRITER), datasets=())
    _write_dataset(project, "mc", MC_SPEC, MC_ROWS)
    catalog = load_catalog(project)
    assert catalog.answer_mode("fake-mc", "mc") == "loglikelihood"
    assert catalog.answer_mode("fake-writer", "mc") == "generate"
    store = Store(tmp_path / "store")
    _, generations, scores = _evaluate(project, store, "fake-writer", "mc")
    assert set(generations["answer_mode"]) == {"generate"}
    assert set(scores["answer_mode"]) == {"generate"}
    assert _values(scores, "acc") == [1.0, 1.0, 0.0, 1.0]
    assert _values(scores, "acc_norm") == [None] * 4  # no log-likelihoods: does not apply
    user = json.loads(generations.sort("sample_id")["messages"][0])[-1]["content"]
    assert "A. cat\nB. elephant" in user and "one letter (A-B)" in user
    _, generations, scores = _evaluate(project, store, "fake-mc", "mc")
    assert set(generations["answer_mode"]) == {"loglikelihood"}
    assert generations["choice_logprobs"].null_count() == 0
    rows = aggregate(catalog, store, "fake-writer", "mc").frame
    assert set(rows["answer_mode"]) == {"generate"}
    # The two cells' numbers are labelled wherever they are listed together.
    board = pl.concat(
        [
            aggregate(catalog, store, m, "mc").frame.filter(pl.col("metric") == "acc")
            for m in ("fake-mc", "fake-writer")
        ]
    )
    text = leaderboard_markdown(board.select(*_board_columns()))
    assert "| fake-mc | mc | acc | log-likelihood |" in text
    assert "| fake-writer | mc | acc | generated |" in text


def _board_columns() -> list[str]:
    from eval_pipeline.core.schemas import LEADERBOARD

    # A leaderboard row is an aggregates row plus whether the cell is held.
    return [c for c in LEADERBOARD.names() if c != "held"]


def test_compare_refuses_to_pair_a_loglikelihood_and_a_generated_answer_accuracy(tmp_path):
    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED), datasets=())
    _write_dataset(project, "mc", MC_SPEC, MC_ROWS)
    store = Store(tmp_path / "store")
    _, _, by_loglik = _evaluate(project, store, "fake-mc", "mc")
    # The same slug, now a model that only writes.
    writer = {**WRITER, "slug": "fake-mc"}
    (project / "models.yaml").write_text(yaml.safe_dump(_models(writer)))
    _, _, by_letter = _evaluate(project, store, "fake-mc", "mc")
    report = compare_runs(by_loglik, by_letter, baseline_name="before", current_name="after")
    assert report.comparisons == []
    assert len(report.refused) == 3  # acc, acc_norm, acc_bytes
    assert any(
        r.startswith("mc|fake-mc:acc: before answered by loglikelihood, after by generate")
        for r in report.refused
    )
    assert "Not compared: different answer modes" in report.to_markdown()
    # The same mode on both sides compares as before.
    assert compare_runs(by_letter, by_letter).comparisons
    # Tables written before answer modes existed (no column) still pair.
    legacy = by_loglik.drop("answer_mode")
    assert compare_runs(legacy, by_letter).comparisons


def test_a_not_applicable_cell_runs_without_a_model_call_and_shows_as_na(tmp_path):
    from eval_pipeline.providers.fake import CALL_LOG

    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED, WRITER), datasets=())
    _write_dataset(project, "mc", {**MC_SPEC, "without_loglikelihood": "not_applicable"}, MC_ROWS)
    catalog = load_catalog(project)
    assert catalog.answer_mode("fake-writer", "mc") == "not_applicable"
    assert "without_loglikelihood" in catalog.not_applicable_reason("fake-writer", "mc")
    assert catalog.not_applicable_reason("fake-mc", "mc") is None
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "mc|fake-writer")
    assert result.success  # checks included
    assert not [c for c in CALL_LOG if c[0] == "fake-writer"]
    store = Store(store_root)
    assert store.read("generations", dataset="mc", model="fake-writer").height == 0
    aggregates = store.read("aggregates", dataset="mc", model="fake-writer")
    assert set(aggregates["answer_mode"]) == {"not_applicable"}
    assert aggregates["n"].to_list() == [0, 0, 0] and aggregates["mean"].null_count() == 3
    board = store.read("leaderboard")
    row = board.filter(pl.col("model") == "fake-writer").row(0, named=True)
    assert row["answer_mode"] == "not_applicable"
    assert "| fake-writer | mc | acc | not applicable | 0 | n/a |" in leaderboard_markdown(board)
    # The explorer's cell says so too.
    index = (store.reports_dir / "explorer" / "data" / "index.js").read_text()
    assert '"not_applicable"' in index
