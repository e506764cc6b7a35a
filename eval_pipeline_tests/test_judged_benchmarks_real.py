"""MT-Bench and AlpacaEval end to end with the shipped model as both answerer and judge."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import REPO, make_project

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dataset", ["mt-bench", "alpacaeval"])
def test_a_judged_benchmark_runs_end_to_end_on_the_default_model(tmp_path, dataset):
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    project = make_project(tmp_path / "p", models=models, datasets=(dataset,))
    spec_path = project / "datasets" / dataset / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["sampling"]["max_tokens"] = 32  # short answers keep it quick on 2 cores
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    store_root = tmp_path / "store"
    result = materialize(project, store_root, f"{dataset}|smollm2-135m", sample_limit=2)
    assert result.success
    store = Store(store_root)
    judged = store.read("judgements", dataset=dataset, model="smollm2-135m")
    assert judged.height == 4  # two turns, or two orders, of two samples
    assert set(judged["status"]) == {"ok"}
    scores = store.read("scores", dataset=dataset, model="smollm2-135m")
    if dataset == "mt-bench":
        gens = store.read("generations", dataset=dataset, model="smollm2-135m")
        assert gens["turn_completions"].list.len().to_list() == [2, 2]
        turn = scores.filter(pl.col("metric") == "mt-bench:turn2")["value"]
        assert all(1.0 <= v <= 10.0 for v in turn)
    else:
        aggregates = store.read("aggregates", dataset=dataset, model="smollm2-135m")
        assert "win_rate:length_controlled" in aggregates["metric"].to_list()
        assert set(scores.filter(pl.col("metric") == "win_rate")["value"]) <= {0.0, 0.5, 1.0}
