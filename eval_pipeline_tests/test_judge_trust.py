"""Trust figures of a judge: self-consistency, pairwise judge-human agreement, shown."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.defs.judge import calibration_metadata
from eval_pipeline.judge import (
    JudgedPair,
    alpaca_eval_rows,
    calibrate_judge,
    calibration_markdown,
    cohen_kappa,
    import_labels,
    matched_outcomes,
    pairwise_human_agreement,
)
from eval_pipeline.stages.catalog_tables import build_dataset_samples, build_prompt_versions
from eval_pipeline.storage import Store
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project
from eval_pipeline_tests.projects import make_project


def _script_repeats(project: Path, repeat_answers: dict[str, str]) -> None:
    # The fake judge answers these ids differently when asked again with another seed.
    path = project / "models.yaml"
    models = yaml.safe_load(path.read_text())
    for model in models["models"]:
        if model["slug"] == "fake-judge":
            model["options"]["repeat_answers"] = repeat_answers
    path.write_text(yaml.safe_dump(models, sort_keys=False))


def test_self_consistency_is_measured_stored_and_in_the_metadata(tmp_path, monkeypatch):
    monkeypatch.delenv("EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS", raising=False)
    answers = distorted_label_answers()
    project = judged_project(tmp_path / "p", answers=answers)
    first_ids = list(answers)[:10]
    # Two of the ten repeated verdicts change (a different score), eight stay.
    flipped = {
        i: json.dumps({"score": 5 if json.loads(answers[i])["score"] != 5 else 1})
        for i in first_ids[3:5]
    }
    _script_repeats(project, flipped)
    store = Store(tmp_path / "s")
    report = calibrate_judge(
        load_catalog(project), store, "fake-judge", "helpfulness", self_consistency_items=10
    )
    figure = report.self_consistency
    assert figure["items"] == 10 and figure["same"] == 8 and figure["value"] == pytest.approx(0.8)
    assert figure["ci_low"] <= 0.8 <= figure["ci_high"] and figure["ci_low"] < figure["ci_high"]
    # 42 verdicts and 10 repeats sent; the repeats bypassed the cache (none came from it).
    assert report.judge_calls == 52
    document = json.loads(report.path.read_text())
    assert document["self_consistency"] == figure
    metadata = calibration_metadata(report, report.judge_calls)
    assert metadata["self_consistency"] == pytest.approx(0.8)
    assert metadata["self_consistency_ci_low"] == figure["ci_low"]
    assert metadata["self_consistency_items"] == 10
    low, high = figure["ci_low"], figure["ci_high"]
    assert f"| 0.800 [{low:.3f}, {high:.3f}] (10) |" in calibration_markdown([report])
    # Reused: nothing is sent again and the stored figure comes back.
    again = calibrate_judge(
        load_catalog(project), store, "fake-judge", "helpfulness", self_consistency_items=10
    )
    assert again.reused and again.judge_calls == 0 and again.self_consistency == figure


def test_self_consistency_zero_turns_it_off_and_a_bad_count_is_refused(tmp_path, monkeypatch):
    project = judged_project(tmp_path / "p", answers=distorted_label_answers())
    monkeypatch.setenv("EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS", "0")
    report = calibrate_judge(
        load_catalog(project), Store(tmp_path / "s"), "fake-judge", "helpfulness"
    )
    assert report.self_consistency == {} and report.judge_calls == 42
    assert "self_consistency" not in calibration_metadata(report, 42)
    monkeypatch.setenv("EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS", "many")
    with pytest.raises(ValueError, match="EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS"):
        calibrate_judge(load_catalog(project), Store(tmp_path / "t"), "fake-judge", "helpfulness")


def test_cohens_kappa_and_the_label_matching_by_hand():
    # Judge 1, 1, 0, 0.5 against people 1, 0, 0, 0.5: p_o = 3/4; p_e = 1/2 * 1/4 (wins)
    # + 1/4 * 1/2 (losses) + 1/4 * 1/4 (ties) = 5/16; kappa = (3/4 - 5/16) / (11/16) = 7/11.
    assert cohen_kappa([1, 1, 0, 0.5], [1, 0, 0, 0.5]) == pytest.approx(7 / 11)
    assert cohen_kappa([1, 1], [1, 1]) is None  # one category throughout: undefined
    pairs = [
        JudgedPair("Q1", "mine", "theirs", 1.0),
        JudgedPair("Q2", "mine 2", "theirs 2", 0.0),
        JudgedPair("Q3", "mine 3", "theirs 3", None),  # no verdict: left out
    ]
    labels = [
        {"prompt": "Q1", "answer_a": "mine", "answer_b": "theirs", "preferred": "A"},
        {"prompt": "Q1 ", "answer_a": " theirs", "answer_b": "mine", "preferred": "A"},
        {"prompt": "Q2", "answer_a": "theirs 2", "answer_b": "mine 2", "preferred": "A"},
        {"prompt": "Q2", "answer_a": "other", "answer_b": "mine 2", "preferred": "A"},
        {"prompt": "Q3", "answer_a": "mine 3", "answer_b": "theirs 3", "preferred": "tie"},
    ]
    # Label 1: model wins (agrees); label 2: swapped, the baseline wins (disagrees);
    # label 3: swapped, the baseline wins, the judge said loss (agrees); 4: other texts.
    assert matched_outcomes(labels, pairs) == ([1.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    found = pairwise_human_agreement(labels, pairs)
    assert found.n == 3 and found.agreement == pytest.approx(2 / 3)
    assert found.agreement_ci is not None and found.agreement_ci[0] <= 2 / 3


def _pairwise_project(tmp_path: Path, verdict: str) -> tuple[Catalog, Store]:
    models = {
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
    root = make_project(tmp_path / "p", models=models, datasets=("alpacaeval",))
    spec_path = root / "datasets" / "alpacaeval" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = ["fake-pairjudge"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog, store = load_catalog(root), Store(tmp_path / "s")
    build_prompt_versions(catalog, store, "alpacaeval")
    build_dataset_samples(catalog, store, "alpacaeval")
    stages.generate(catalog, store, "fake-short", "alpacaeval", sample_limit=4)
    stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    stages.score(catalog, store, "fake-short", "alpacaeval")
    return catalog, store


def _row(frame: pl.DataFrame, metric: str) -> dict[str, object]:
    return frame.filter(pl.col("metric") == metric).row(0, named=True)


def test_aggregates_carry_position_bias_and_pairwise_agreement_with_imported_labels(tmp_path):
    catalog, store = _pairwise_project(tmp_path, "[[C]]")  # a consistent tie every time
    rows = alpaca_eval_rows()
    mine = "A short answer."
    labels = [
        {"prompt": rows[0]["instruction"], "answer_a": mine, "answer_b": rows[0]["baseline"]},
        {"prompt": rows[1]["instruction"], "answer_a": mine, "answer_b": rows[1]["baseline"]},
        {"prompt": rows[2]["instruction"], "answer_a": rows[2]["baseline"], "answer_b": mine},
        {"prompt": "not a judged instruction", "answer_a": "x", "answer_b": "y"},
    ]
    preferred = ["tie", "A", "tie", "B"]
    source = tmp_path / "prefs.jsonl"
    source.write_text(
        "".join(
            json.dumps({**label, "preferred": p, "rater": "alice"}) + "\n"
            for label, p in zip(labels, preferred, strict=True)
        )
    )
    assert import_labels(catalog.root, source).added == 4
    frame = stages.aggregate(catalog, store, "fake-short", "alpacaeval").frame
    bias = _row(frame, "win_rate:position_bias")
    assert bias["mean"] == 0.0 and bias["n"] == 4
    agreement = _row(frame, "win_rate:human_agreement")
    # Three labels match judged pairs; the judge's ties agree with the two tied ones.
    assert agreement["n"] == 3 and agreement["mean"] == pytest.approx(2 / 3)
    assert agreement["ci_low"] <= 2 / 3 <= agreement["ci_high"]
    # A judge that says "tie" to everything agrees only as often as chance: kappa 0.
    assert _row(frame, "win_rate:human_kappa")["mean"] == pytest.approx(0.0)


def test_a_judge_that_follows_the_position_has_a_position_bias_of_one(tmp_path):
    catalog, store = _pairwise_project(tmp_path, "[[A]]")
    frame = stages.aggregate(catalog, store, "fake-short", "alpacaeval").frame
    bias = _row(frame, "win_rate:position_bias")
    assert bias["mean"] == 1.0 and bias["ci_low"] == bias["ci_high"] == 1.0
    # No labels imported: no agreement rows.
    assert frame.filter(pl.col("metric").str.contains("human")).height == 0
