"""The per-dataset assets: partitioned by dataset, kept current by the grid's runs."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from eval_pipeline.defs import build_definitions
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import execute_partition, materialize
from eval_pipeline_tests.projects import make_project

PER_DATASET = ("prompt_versions", "dataset_samples")


@pytest.fixture
def small_project(tmp_path):
    return make_project(tmp_path / "project", datasets=("qa", "json-extract"))


def recorded(instance: dg.DagsterInstance, asset: str) -> list[tuple[str, dict]]:
    """Every materialization of ``asset``, oldest first: (partition, metadata values)."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100, ascending=True)
    return [
        (
            str(r.partition_key),
            {k: v.value for k, v in r.asset_materialization.metadata.items()},
        )
        for r in records.records
    ]


def test_per_dataset_assets_are_partitioned_by_dataset_and_mapped_from_the_grid():
    from eval_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    grid = defs.resolve_assets_def("generations").partitions_def
    for asset in PER_DATASET:
        partitions = defs.resolve_assets_def(asset).partitions_def
        assert isinstance(partitions, dg.StaticPartitionsDefinition)
        assert (
            partitions.get_partition_keys()
            == grid.get_partitions_def_for_dimension("dataset").get_partition_keys()
        )
    # Lineage: the grid partition qa|smollm2-135m reads the qa partition of each table and
    # of the dataset's version, and its model's version (the adapters are read whole: see
    # defs/adapters.py).
    parents = graph.get_parents_partitions(dg.AssetKey("generations"), "qa|smollm2-135m")
    read = {(p.asset_key.to_user_string(), p.partition_key) for p in parents.parent_partitions}
    assert {(asset, key) for asset, key in read if asset != "adapters"} == {
        ("prompt_versions", "qa"),
        ("dataset_samples", "qa"),
        ("versions/dataset", "qa"),
        ("versions/model", "smollm2-135m"),
    }
    children = graph.get_child_partition_keys_of_parent(
        "qa", dg.AssetKey("prompt_versions"), dg.AssetKey("generations")
    )
    assert {str(k) for k in children} == {
        f"qa|{m}" for m in grid.get_partitions_def_for_dimension("model").get_partition_keys()
    }


def test_grid_runs_record_a_dataset_partition_only_when_its_version_changes(
    small_project, store_root
):
    with dg.instance_for_test() as instance:
        assert materialize(
            small_project, store_root, "qa|fake-good", sample_limit=3, instance=instance
        ).success
        first = {asset: recorded(instance, asset) for asset in PER_DATASET}
        assert [p for p, _ in first["prompt_versions"]] == ["qa"]
        assert [p for p, _ in first["dataset_samples"]] == ["qa"]
        samples = Store(store_root).read("dataset_samples", dataset="qa")
        meta = first["dataset_samples"][0][1]
        assert meta["dataset_version"] == samples["dataset_version"][0]
        assert meta["dagster/row_count"] == samples.height
        assert first["prompt_versions"][0][1]["prompt_version"].startswith("qa@")

        # Another model of the same dataset, and the same partition again: nothing new.
        materialize(small_project, store_root, "qa|fake-echo", sample_limit=3, instance=instance)
        materialize(small_project, store_root, "qa|fake-good", sample_limit=3, instance=instance)
        assert {asset: recorded(instance, asset) for asset in PER_DATASET} == first

        # A new row: a new dataset version, recorded once; the prompt is unchanged.
        data = small_project / "datasets" / "qa" / "data.jsonl"
        row = {"id": "qa-extra", "question": "What is 1 + 1?", "answer": "2", "kind": "arithmetic"}
        data.write_text(data.read_text() + json.dumps(row) + "\n")
        materialize(small_project, store_root, "qa|fake-good", sample_limit=3, instance=instance)
        samples = recorded(instance, "dataset_samples")
        assert [p for p, _ in samples] == ["qa", "qa"]
        assert samples[1][1]["dataset_version"] != samples[0][1]["dataset_version"]
        assert samples[1][1]["dagster/row_count"] == samples[0][1]["dagster/row_count"] + 1
        assert recorded(instance, "prompt_versions") == first["prompt_versions"]

        # An edited template: a new prompt version, recorded once.
        prompt = small_project / "prompts" / "qa.jinja"
        prompt.write_text(prompt.read_text() + " ")
        materialize(small_project, store_root, "qa|fake-good", sample_limit=3, instance=instance)
        prompts = recorded(instance, "prompt_versions")
        assert [p for p, _ in prompts] == ["qa", "qa"]
        assert prompts[1][1]["prompt_version"] != prompts[0][1]["prompt_version"]
        assert len(recorded(instance, "dataset_samples")) == 2


def test_a_backfill_over_several_models_records_each_datasets_tables_once(
    small_project, store_root
):
    job = build_definitions(str(small_project), str(store_root)).resolve_job_def("evaluation_job")
    # The rectangle of both datasets x both models, in one run (a single-run backfill).
    tags = {
        "dagster/asset_partition_range_start": "json-extract|fake-echo",
        "dagster/asset_partition_range_end": "qa|fake-good",
    }
    config = {"ops": {"generations": {"config": {"sample_limit": 2}}}}
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, tags=tags, run_config=config)
        assert result.success
        assert {
            str(r.partition_key)
            for r in instance.fetch_materializations(dg.AssetKey("generations"), limit=10).records
        } == {"json-extract|fake-echo", "json-extract|fake-good", "qa|fake-echo", "qa|fake-good"}
        for asset in PER_DATASET:
            assert sorted(p for p, _ in recorded(instance, asset)) == ["json-extract", "qa"]


def test_datasets_job_materializes_one_dataset_and_the_grid_run_then_records_none(
    small_project, store_root
):
    defs = build_definitions(str(small_project), str(store_root))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("datasets_job").execute_in_process(
            partition_key="json-extract", instance=instance
        )
        assert result.success
        for asset in PER_DATASET:
            assert [p for p, _ in recorded(instance, asset)] == ["json-extract"], asset
        assert Store(store_root).read("dataset_samples", dataset="json-extract").height > 0
        assert not list((store_root).glob("generations/**/*.parquet"))
        job = defs.resolve_job_def("evaluation_job")
        config = {"ops": {"generations": {"config": {"sample_limit": 2}}}}
        assert execute_partition(job, "json-extract|fake-good", config, instance, True).success
        for asset in PER_DATASET:
            assert len(recorded(instance, asset)) == 1, asset
