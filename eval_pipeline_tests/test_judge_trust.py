"""Trust figures of a judge: self-consistency, pairwise judge-human agreement, shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.defs.judge import calibration_metadata
from eval_pipeline.judge import calibrate_judge
from eval_pipeline.storage import Store
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project


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
