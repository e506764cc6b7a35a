"""Pairwise judging against a baseline: both orders, ties, the order-consistent verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.judge import (
    alpaca_eval_rows,
    consistent_outcome,
    length_controlled_win_rate,
    parse_preference,
)
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.stages.catalog_tables import build_dataset_samples, build_prompt_versions
from eval_pipeline.storage import Store
from eval_pipeline_tests.projects import make_project


def _models(verdict: str) -> dict:
    return {
        "models": [
            {
                "slug": "fake-short",
                "provider": "fake",
                "model_id": "fake/short",
                "options": {"mode": "fixed", "text": "A short answer."},
            },
            {
                "slug": "fake-pairjudge",
                "provider": "fake",
                "model_id": "fake/pairjudge",
                "options": {"mode": "fixed", "text": f"Both are fine. {verdict}"},
            },
        ]
    }


def _project(tmp_path: Path, verdict: str) -> tuple[Catalog, Store]:
    root = make_project(tmp_path / "p", models=_models(verdict), datasets=("alpacaeval",))
    spec_path = root / "datasets" / "alpacaeval" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = ["fake-pairjudge"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog, store = load_catalog(root), Store(tmp_path / "s")
    build_prompt_versions(catalog, store, "alpacaeval")
    build_dataset_samples(catalog, store, "alpacaeval")
    stages.generate(catalog, store, "fake-short", "alpacaeval", sample_limit=6)
    return catalog, store


def test_the_wheel_gives_alpacaevals_805_instructions_with_baseline_outputs():
    rows = alpaca_eval_rows()
    assert len(rows) == 805
    assert all(r["instruction"] and r["baseline"] for r in rows)


def test_a_judge_that_always_prefers_the_first_answer_is_caught_by_the_swapped_order(tmp_path):
    catalog, store = _project(tmp_path, "[[A]]")
    stats = stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    assert stats.model_calls == 12 and calls_for("fake-pairjudge") == 12  # two per sample
    judged = store.read("judgements", dataset="alpacaeval", model="fake-short")
    assert sorted(set(judged["metric"])) == ["win_rate:model-first", "win_rate:model-second"]
    assert set(judged["prompt_kind"]) == {"pairwise"}
    report = stages.score(catalog, store, "fake-short", "alpacaeval")
    # Wins when shown first, losses when shown second: a tie, and never consistent.
    assert report.means["win_rate"] == 0.5
    assert report.means["win_rate:position_consistent"] == 0.0
    assert report.means["win_rate:length_diff"] < 0  # "A short answer." vs GPT-4 turbo


def test_consistent_ties_and_the_aggregates_report_the_length_controlled_win_rate(tmp_path):
    catalog, store = _project(tmp_path, "[[C]]")
    stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    report = stages.score(catalog, store, "fake-short", "alpacaeval")
    assert report.means["win_rate"] == 0.5
    assert report.means["win_rate:position_consistent"] == 1.0
    aggregates = stages.aggregate(catalog, store, "fake-short", "alpacaeval").frame
    lc = aggregates.filter(aggregates["metric"] == "win_rate:length_controlled").row(0, named=True)
    assert lc["n"] == 6 and lc["mean"] == pytest.approx(0.5, abs=1e-6)
    raw = aggregates.filter(aggregates["metric"] == "win_rate").row(0, named=True)
    assert raw["mean"] == 0.5 and raw["ci_low"] <= 0.5 <= raw["ci_high"]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (1.0, 1.0, (1.0, True)),
        (0.0, 0.0, (0.0, True)),
        (0.5, 0.5, (0.5, True)),
        (1.0, 0.0, (0.5, False)),
        (1.0, 0.5, (0.5, False)),
        (None, 1.0, (None, False)),
    ],
)
def test_the_verdict_is_the_one_both_orders_agree_on_else_a_tie(first, second, expected):
    assert consistent_outcome(first, second) == expected


def test_preferences_read_the_last_bracketed_letter_and_c_is_a_tie():
    assert parse_preference("A is better [[A]]") == "A"
    assert parse_preference("[[A]] no, [[B]]") == "B"
    assert parse_preference("[[C]]") == "tie"
    assert parse_preference("A") is None and parse_preference(None) is None


def test_length_control_removes_a_win_rate_that_only_tracks_length():
    rng = np.random.default_rng(0)
    diff = rng.normal(0, 400, 2000)
    # Wins come only from being longer: at equal length the model wins half the time.
    p = 1 / (1 + np.exp(-2.0 * np.tanh(diff / diff.std())))
    wins = (rng.random(2000) < p).astype(float)
    shifted = diff + 300  # the model writes longer answers throughout
    p_long = 1 / (1 + np.exp(-2.0 * np.tanh(shifted / diff.std())))
    wins_long = (rng.random(2000) < p_long).astype(float)
    assert wins_long.mean() > 0.6
    assert length_controlled_win_rate(wins, diff) == pytest.approx(0.5, abs=0.04)
    assert length_controlled_win_rate(wins_long, shifted) < wins_long.mean()


def test_another_catalog_model_can_be_the_baseline_once_it_has_answered(tmp_path):
    from eval_pipeline.core.errors import EvalPipelineError

    models = _models("[[A]]")
    models["models"].append(
        {
            "slug": "fake-long",
            "provider": "fake",
            "model_id": "fake/long",
            "options": {"mode": "fixed", "text": "A much longer answer than the short one gives."},
        }
    )
    root = make_project(tmp_path / "p", models=models, datasets=("alpacaeval",))
    spec_path = root / "datasets" / "alpacaeval" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"] = {"judges": ["fake-pairjudge"], "baseline_model": "fake-long"}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog, store = load_catalog(root), Store(tmp_path / "s")
    build_prompt_versions(catalog, store, "alpacaeval")
    build_dataset_samples(catalog, store, "alpacaeval")
    stages.generate(catalog, store, "fake-short", "alpacaeval", sample_limit=3)
    with pytest.raises(EvalPipelineError, match="baseline fake-long has no generations"):
        stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    stages.generate(catalog, store, "fake-long", "alpacaeval", sample_limit=3)
    stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    report = stages.score(catalog, store, "fake-short", "alpacaeval")
    short, long = "A short answer.", "A much longer answer than the short one gives."
    assert report.means["win_rate:length_diff"] == len(short) - len(long)
    assert report.means["win_rate"] == 0.5  # the first position always won
