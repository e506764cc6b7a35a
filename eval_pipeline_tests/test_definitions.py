"""The definitions load, with the expected assets, partitions, checks and jobs."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.defs import build_definitions
from eval_pipeline_tests.projects import REPO


def test_definitions_load_with_the_expected_assets_and_partitions():
    from eval_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "prompt_versions",
        "dataset_samples",
        "generations",
        "judgements",
        "scores",
        "aggregates",
        "leaderboard",
        "regression_report",
        "judge_calibration/smollm2_135m/helpfulness",
        "train_samples",
        "adapters",
        # Per-partition versions of what the grid's cells read (defs/versions.py).
        "versions/model",
        "versions/dataset",
        "versions/scorers",
        "versions/judges",
    }
    gens = defs.resolve_assets_def("generations")
    grid = gens.partitions_def
    assert isinstance(grid, dg.MultiPartitionsDefinition)
    assert sorted(d.name for d in grid.partitions_defs) == ["dataset", "model"]
    keys = grid.get_partition_keys()
    assert "qa|smollm2-135m" in keys
    assert {"humaneval|smollm2-135m", "json-extract|smollm2-135m"} <= set(keys)
    # The recipes' fine-tuned models are models of the grid and the adapters' keys.
    assert "json-extract|smollm2-135m__json-extract-lora" in keys
    adapters = defs.resolve_assets_def("adapters").partitions_def
    assert adapters.get_partition_keys() == [
        "smollm2-135m__json-extract-lora",
        "smollm2-135m__qa-lora",
    ]
    # Every grid cell lists every adapter upstream: no Dagster partition mapping maps a
    # subset of the `model` dimension to its cells and passes `dg check defs`
    # (defs/adapters.py: generation_deps).
    for cell in ("json-extract|smollm2-135m__json-extract-lora", "qa|smollm2-135m"):
        parents = graph.get_parent_partition_keys_for_child(
            cell, dg.AssetKey("adapters"), dg.AssetKey("generations")
        )
        assert set(parents.partitions_subset.get_partition_keys()) == {
            "smollm2-135m__json-extract-lora",
            "smollm2-135m__qa-lora",
        }
        assert not parents.required_but_nonexistent_subset.get_partition_keys()
    # Each adapter reads the train split of its recipe's dataset.
    split = graph.get_parent_partition_keys_for_child(
        "smollm2-135m__qa-lora", dg.AssetKey("train_samples"), dg.AssetKey("adapters")
    )
    assert set(split.partitions_subset.get_partition_keys()) == {"qa"}
    assert defs.resolve_assets_def("leaderboard").partitions_def is None


def test_jobs_and_blocking_checks_are_defined():
    defs = build_definitions(str(REPO))
    assert defs.resolve_job_def("evaluation_job") is not None
    assert defs.resolve_job_def("ci_suite_job") is not None
    graph = defs.resolve_asset_graph()
    blocking = {key.name: graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    assert blocking == {
        "generations_complete": True,
        "scores_complete": True,
        "aggregates_regression": True,
        "adapter_vs_base": False,
        "aggregates_calibration": False,
        "aggregates_sandbox": False,
    }


def test_per_partition_jobs_run_in_process_and_leave_the_whole_store_reports_to_reporting_job():
    defs = build_definitions(str(REPO))
    reports = {"leaderboard", "regression_report"}
    for name in ("evaluation_job", "ci_suite_job", "regression_suite_job"):
        job = defs.resolve_job_def(name)
        assets = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        assert "aggregates" in assets and not assets & reports, name
        # The per-dataset tables have their own partitioning: `generations` writes them.
        assert not assets & {"prompt_versions", "dataset_samples"}, name
        assert job.executor_def.name == "in_process", name
    datasets = defs.resolve_job_def("datasets_job")
    assert {k.to_user_string() for k in datasets.asset_layer.executable_asset_keys} == {
        "prompt_versions",
        "dataset_samples",
    }
    assert "qa" in datasets.partitions_def.get_partition_keys()
    reporting = defs.resolve_job_def("reporting_job")
    assert {k.to_user_string() for k in reporting.asset_layer.executable_asset_keys} == reports
    assert reporting.executor_def.name == "multiprocess"
    training = defs.resolve_job_def("training_job")
    assert {k.to_user_string() for k in training.asset_layer.executable_asset_keys} == {"adapters"}
    assert training.executor_def.name == "in_process"
