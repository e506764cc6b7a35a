"""The per-partition quality checks on ``aggregates``: judge calibration, sandbox programs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.quality_checks import sandbox_outcome
from eval_pipeline.storage import Store
from eval_pipeline_tests.bench.scale import write_aggregates
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project


def test_the_sandbox_check_fails_a_cell_with_suspicious_programs(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    write_aggregates(store_root, 1, 1)
    store = Store(store_root)
    key = PartitionKey(model="m000", dataset="qa-000")
    assert sandbox_outcome(store, key) == (True, "no code metrics", {"suspicious": 0})
    frame = store.read("aggregates", key.dataset, key.model)
    store.write(
        "aggregates",
        frame.with_columns(pl.Series("suspicious", [2, None], dtype=pl.Int64)),
        dataset=key.dataset,
        model=key.model,
    )
    passed, description, metadata = sandbox_outcome(store, key)
    assert not passed and "2 suspicious program(s)" in description
    assert metadata == {"suspicious": 2, "answer_match/suspicious": 2}


def test_each_judged_cell_gets_its_own_calibration_verdict(tmp_path: Path) -> None:
    project = judged_project(tmp_path / "project", answers=distorted_label_answers())
    with dg.instance_for_test() as instance:
        result = materialize(
            project, tmp_path / "store", "open-qa|fake-good", sample_limit=3, instance=instance
        )
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    calibration = checks["aggregates_calibration"]
    assert calibration.passed, calibration.description
    assert calibration.partition == "open-qa|fake-good"
    assert calibration.metadata["fake-judge/helpfulness/status"].value == "fitted"
    assert checks["aggregates_sandbox"].passed
