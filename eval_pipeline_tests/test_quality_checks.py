"""The per-partition quality checks on ``aggregates``: judge calibration, sandbox programs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.quality_checks import sandbox_outcome
from eval_pipeline.storage import Store
from eval_pipeline_tests.bench.scale import write_aggregates
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project
from eval_pipeline_tests.projects import make_project


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


def test_a_run_over_several_cells_records_each_cells_verdict(tmp_path: Path) -> None:
    # The nightly run of one model covers a range of cells; each check must still give
    # every cell its own result (the UI's partition view, regression_sensor).
    project = make_project(tmp_path / "project", datasets=("qa",))
    defs = build_definitions(str(project), str(tmp_path / "store"))
    job = defs.resolve_job_def("evaluation_job")
    grid = job.partitions_def
    assert grid is not None
    cells = [str(k) for k in grid.get_partition_keys()]
    assert len(cells) == 2
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"generations": {"config": {"sample_limit": 2}}}},
            tags={
                "dagster/asset_partition_range_start": cells[0],
                "dagster/asset_partition_range_end": cells[-1],
            },
        )
        assert result.success
        evaluations = result.get_asset_check_evaluations()
    by_check: dict[str, dict[str | None, dg.AssetCheckEvaluation]] = {}
    for evaluation in evaluations:
        by_check.setdefault(evaluation.check_name, {})[evaluation.partition] = evaluation
    for name in ("generations_complete", "scores_complete", "aggregates_sandbox"):
        assert set(by_check[name]) == {*cells, None}, name
        assert all(e.passed for e in by_check[name].values()), name
        assert by_check[name][None].metadata["partitions"].value == 2
    # No baseline is pinned in this project: each cell is "not compared", on its own.
    regression = by_check["aggregates_regression"]
    assert set(regression) == {*cells, None}
    assert regression[cells[0]].metadata["regressed_metrics"].value == ""
