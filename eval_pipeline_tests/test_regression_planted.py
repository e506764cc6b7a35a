"""A planted regression (15% of answers made wrong) is flagged; an identical re-run is not."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from eval_pipeline.regression import compare_runs, pin_baseline
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialize, report
from eval_pipeline_tests.projects import make_project

LIMIT = 120


def _models(**options) -> dict:
    return {
        "models": [
            {
                "slug": "fake-model",
                "provider": "fake",
                "model_id": "fake/model",
                "revision": options.pop("revision", "r1"),
                "options": {"mode": "reference", **options},
            }
        ]
    }


def _check(result) -> dict:
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.asset_check_evaluation_data
            if data.check_name == "aggregates_regression":
                return {
                    "passed": data.passed,
                    "description": data.description,
                    **{k: v.value for k, v in data.metadata.items()},
                }
    raise AssertionError("aggregates_regression did not run")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Baseline run, identical re-run, then a planted regression; results of each."""
    tmp = tmp_path_factory.mktemp("planted")
    project = make_project(tmp / "project", models=_models(), datasets=("qa",))
    store_root = tmp / "store"
    materialize(project, store_root, "qa|fake-model", sample_limit=LIMIT)
    pin_baseline(Store(store_root), project, "main", description="fake-model r1")
    baseline_scores = Store(store_root).read("scores", dataset="qa", model="fake-model")
    identical = materialize(
        project, store_root, "qa|fake-model", sample_limit=LIMIT, use_cache=False
    )
    identical_scores = Store(store_root).read("scores", dataset="qa", model="fake-model")
    # A new revision of the model whose answers on 15% of the samples are wrong.
    (project / "models.yaml").write_text(
        yaml.safe_dump(_models(revision="r2", wrong_fraction=0.15))
    )
    # The regression check blocks: the run fails, and the reports are built on their own.
    regressed = materialize(
        project, store_root, "qa|fake-model", sample_limit=LIMIT, raise_on_error=False
    )
    report(project, store_root)
    return {
        "project": project,
        "store": Store(store_root),
        "baseline_scores": baseline_scores,
        "identical": identical,
        "identical_scores": identical_scores,
        "regressed": regressed,
    }


def test_identical_rerun_is_not_flagged(planted):
    check = _check(planted["identical"])
    assert check["passed"] is True
    assert check["baseline"] == "main"
    assert check["regressed_metrics"] == ""
    assert check["answer_match/delta"] == 0.0
    assert check["answer_match/p_value"] == 1.0


def test_planted_regression_fails_the_partitioned_check(planted):
    assert not planted["regressed"].success
    check = _check(planted["regressed"])
    assert check["passed"] is False
    assert "answer_match" in check["regressed_metrics"].split(",")
    assert check["answer_match/delta"] < -0.05
    assert check["answer_match/p_value"] < 0.001
    assert "regression against baseline 'main'" in check["description"]


def test_planted_regression_report_lists_metric_delta_ci_p_value_and_flipped_samples(planted):
    store = planted["store"]
    md = (store.root / "reports" / "regression.md").read_text()
    data = json.loads((store.root / "reports" / "regression.json").read_text())
    assert data["regressed"] is True
    row = next(c for c in data["comparisons"] if c["metric"] == "answer_match")
    assert row["test"] == "mcnemar"
    assert row["n"] == LIMIT and row["baseline"] == 1.0
    wrong = {s["sample_id"] for s in row["worse"]}
    current = store.read("generations", dataset="qa", model="fake-model")
    planted_wrong = set(current.filter(pl.col("completion") == "I do not know.")["sample_id"])
    assert wrong == planted_wrong
    assert 0.08 < len(wrong) / LIMIT < 0.22
    assert row["discordant"] == [len(wrong), 0]
    assert row["ci_high"] < 0
    assert "**REGRESSION**" in md and "| qa | answer_match | mcnemar |" in md.replace(
        "fake-model | ", ""
    )
    assert sorted(wrong)[0] in md
    # Kept for the record of this test's run (the closing note quotes it).
    (store.root / "reports" / "planted-regression.md").write_text(md)


def test_compare_runs_on_the_frames_agrees_with_the_check(planted):
    current = planted["store"].read("scores", dataset="qa", model="fake-model")
    report = compare_runs(planted["baseline_scores"], current)
    # numeric_match drops too: the planted "I do not know." has no number in it.
    assert {c.metric for c in report.regressions} == {"answer_match", "numeric_match"}
    same = compare_runs(planted["baseline_scores"], planted["identical_scores"])
    assert not same.regressed and all(c.delta == 0 for c in same.comparisons)


def test_a_significant_drop_smaller_than_the_threshold_is_not_a_regression():
    n = 2000
    base = pl.DataFrame(
        {
            "model": "m",
            "dataset": "d",
            "metric": "acc",
            "sample_id": [f"s{i}" for i in range(n)],
            "value": [1.0] * n,
        }
    )
    # 1% of samples flip: significant with 2000 pairs, but under the 2-point threshold.
    cur = base.with_columns(
        pl.when(pl.int_range(pl.len()) < 20).then(0.0).otherwise(1.0).alias("value")
    )
    report = compare_runs(base, cur)
    c = report.comparisons[0]
    assert c.p_value < 0.001 and c.delta == pytest.approx(-0.01)
    assert not c.regressed
    assert compare_runs(base, cur, threshold=0.005).regressed


def test_continuous_scores_use_the_paired_bootstrap():
    ids = [f"s{i}" for i in range(60)]
    base = pl.DataFrame(
        {
            "model": "m",
            "dataset": "d",
            "metric": "helpfulness",
            "sample_id": ids,
            "value": [float(1 + i % 5) for i in range(60)],
        }
    )
    cur = base.with_columns((pl.col("value") - (pl.int_range(pl.len()) % 2)).clip(1, 5))
    c = compare_runs(base, cur, thresholds={"helpfulness": 0.2}).comparisons[0]
    assert c.test == "paired_bootstrap"
    assert c.regressed and c.threshold == 0.2
