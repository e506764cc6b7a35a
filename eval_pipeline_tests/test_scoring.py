"""Deterministic scorers and the statistics module against hand-computed values."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from eval_pipeline.scoring import run_scorer, stats


def _frame(completions, targets):
    n = len(completions)
    return pl.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "completion": completions,
            "target": targets,
            "fields": ["{}"] * n,
        },
        schema={
            "sample_id": pl.String,
            "completion": pl.String,
            "target": pl.String,
            "fields": pl.String,
        },
    )


def test_normalized_match_ignores_case_punctuation_and_articles():
    out = run_scorer("normalized_match", _frame(["The Paris!", "paris", "Lyon"], ["paris"] * 3), {})
    assert out["value"].to_list() == [1.0, 1.0, 0.0]


def test_normalized_contains_needs_whole_words():
    frame = _frame(["The capital is Paris.", "Answer: 123", None], ["Paris", "12", "x"])
    out = run_scorer("normalized_match", frame, {"contains": True})
    assert out["value"].to_list() == [1.0, 0.0, 0.0]


def test_numeric_match_takes_the_last_number_and_skips_non_numeric_targets():
    frame = _frame(["2 + 3 = 5", "about 1,200", "no idea", "Fe"], ["5", "1200", "7", "Fe"])
    out = run_scorer("numeric_match", frame, {"tolerance": 1e-6})
    assert out["value"].to_list() == [1.0, 1.0, 0.0, None]


def test_exact_and_regex_match():
    assert run_scorer("exact_match", _frame([" 42 ", "42."], ["42", "42"]), {})[
        "value"
    ].to_list() == [1.0, 0.0]
    out = run_scorer(
        "regex_match",
        _frame(["Answer: Blue sky", "nothing"], ["blue sky", "x"]),
        {"pattern": r"answer:\s*(.+)"},
    )
    assert out["value"].to_list() == [1.0, 0.0]


def test_json_fields_scores_each_field_and_finds_fenced_objects():
    target = json.dumps({"name": "Ada Lovelace", "age": 36, "city": "London"}, sort_keys=True)
    completions = [
        'Sure! ```json\n{"name": "Ada Lovelace", "age": 36, "city": "London"}\n```',
        '{"name": "ada lovelace", "age": "36", "city": "Paris"}',
        "no json here",
    ]
    frame = _frame(completions, [target] * 3)
    fields = run_scorer("json_fields", frame, {})
    assert fields["value"].to_list() == pytest.approx([1.0, 2 / 3, 0.0])
    assert "city" in fields["detail"][1]
    exact = run_scorer("json_fields", frame, {"all_or_nothing": True})
    assert exact["value"].to_list() == [1.0, 0.0, 0.0]


def test_mean_and_stderr_match_hand_computed_values():
    values = [1.0, 0.0, 1.0, 1.0]
    assert stats.mean(values) == 0.75
    # sample sd = sqrt(0.25) = 0.5; stderr = 0.5 / 2
    assert stats.stderr(values) == pytest.approx(0.25)
    assert stats.stderr([1.0]) is None


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = [math.sin(i) ** 2 for i in range(60)]
    a = stats.bootstrap_ci(values, seed=7)
    assert a == stats.bootstrap_ci(values, seed=7)
    assert a != stats.bootstrap_ci(values, seed=8)
    assert a[0] < stats.mean(values) < a[1]
    assert stats.bootstrap_ci([]) == (None, None)


def test_pass_at_k_matches_the_closed_form():
    # n=5, c=2, k=1: 1 - C(3,1)/C(5,1) = 0.4 ; k=2: 1 - C(3,2)/C(5,2) = 0.7
    assert stats.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert stats.pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    assert stats.pass_at_k(5, 4, 2) == 1.0
    with pytest.raises(ValueError):
        stats.pass_at_k(1, 1, 2)
