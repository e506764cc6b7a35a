"""End to end with the real default model (SmolLM2-135M-Instruct on CPU).

A few samples of each shipped dataset.
"""

from __future__ import annotations

import shutil

import dagster as dg
import polars as pl
import pytest

from eval_pipeline.core.schemas import VOLATILE_COLUMNS
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize
from eval_pipeline_tests.projects import REPO, make_project

pytestmark = pytest.mark.slow

SAMPLES = 3


@pytest.fixture(scope="module")
def real_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("real") / "project"
    models = __import__("yaml").safe_load((REPO / "models.yaml").read_text())
    # Shorter answers keep the test quick on 2 cores; everything else is the shipped model.
    models["models"][0]["sampling"]["max_tokens"] = 96
    project = make_project(root, models=models)
    for name in ("qa", "json-extract", "humaneval"):
        spec = project / "datasets" / name / "dataset.yaml"
        spec.write_text(spec.read_text().replace("max_tokens: 320", "max_tokens: 160"))
    return project


def test_the_default_model_evaluates_every_dataset_and_a_rerun_makes_no_calls(
    real_project, tmp_path
):
    store_root = tmp_path / "store"
    with dg.instance_for_test() as instance:
        first = {}
        for dataset in ("qa", "json-extract", "humaneval"):
            result = materialize(
                real_project,
                store_root,
                f"{dataset}|smollm2-135m",
                sample_limit=SAMPLES,
                instance=instance,
            )
            assert result.success
            first[dataset] = materialization_metadata(result, "generations")
        assert all(m["model_calls"] == SAMPLES for m in first.values())
        store = Store(store_root)
        gens = store.scan("generations").collect()
        assert gens.height == 3 * SAMPLES
        assert gens["error"].null_count() == gens.height
        assert (gens["output_tokens"] > 0).all()
        assert (gens["completion"].str.len_chars() > 0).all()
        assert set(gens["finish_reason"]) <= {"stop", "length"}
        # HumanEval's stop sequences end generation, and the completion is cut before them.
        code = gens.filter(pl.col("dataset") == "humaneval")
        assert not code["completion"].str.contains("\n```\n", literal=True).any()
        board = store.read("leaderboard")
        assert board.height == 3
        assert sorted(board["dataset"]) == ["humaneval", "json-extract", "qa"]
        assert board.filter(pl.col("dataset") == "humaneval")["metric"][0] == "pass"
        humaneval = store.read("aggregates", dataset="humaneval", model="smollm2-135m")
        assert humaneval["pass_at_1"][0] is not None

        for dataset in ("qa", "json-extract", "humaneval"):
            again = materialize(
                real_project,
                store_root,
                f"{dataset}|smollm2-135m",
                sample_limit=SAMPLES,
                instance=instance,
            )
            meta = materialization_metadata(again, "generations")
            assert (meta["model_calls"], meta["reused_rows"]) == (0, SAMPLES)
        rerun = store.scan("generations").collect()
        # How each run got its rows (timing, cache hits, the run id) differs; nothing else.
        drop = list(VOLATILE_COLUMNS["generations"])
        assert (
            rerun.sort("dataset", "sample_id")
            .drop(drop)
            .equals(gens.sort("dataset", "sample_id").drop(drop))
        )
        # Six evaluation runs, each followed by a reporting run.
        jobs = [r.dagster_run.job_name for r in instance.get_run_records()]
        assert sorted(set(jobs)) == ["evaluation_job", "reporting_job"]
        assert jobs.count("evaluation_job") == 6
    shutil.rmtree(store_root)
