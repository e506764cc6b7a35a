"""Several completions per problem: generation, scoring, checks and unbiased pass@k.

A HumanEval copy asks for 5 samples per problem at temperature 0.8. The fake model
answers the canonical solution, except on a hash-chosen 40% of samples where it answers
code that fails; the sandboxed scorer runs every completion.
"""

from __future__ import annotations

import json
from math import comb

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.stages import checks
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize
from eval_pipeline_tests.projects import make_project

PER_PROBLEM = 5
PROBLEMS = 4

MODELS = {
    "models": [
        {
            "slug": "fake-coder",
            "provider": "fake",
            "model_id": "fake/reference",
            "options": {
                "mode": "reference",
                "wrong_fraction": 0.4,
                "wrong_text": "    return None\n",
            },
        }
    ]
}


def _project(tmp_path, **changes):
    project = make_project(tmp_path / "p", models=MODELS, datasets=("humaneval",))
    path = project / "datasets" / "humaneval" / "dataset.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["samples_per_problem"] = PER_PROBLEM
    spec["sampling"] = {"max_tokens": 320, "temperature": 0.8}
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def _unbiased(n: int, c: int, k: int) -> float:
    # Chen et al. (2021): 1 - C(n - c, k) / C(n, k), written independently of stats.pass_at_k.
    return 1.0 - comb(n - c, k) / comb(n, k)


def test_several_samples_per_problem_give_unbiased_pass_at_k(tmp_path):
    project = _project(tmp_path)
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "humaneval|fake-coder", sample_limit=PROBLEMS)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    meta = materialization_metadata(result, "generations")
    assert meta["model_calls"] == PROBLEMS * PER_PROBLEM
    store = Store(store_root)

    generations = store.read("generations", dataset="humaneval", model="fake-coder")
    assert generations.height == PROBLEMS * PER_PROBLEM
    first = generations["sample_id"].head(PER_PROBLEM).to_list()
    assert first == [f"HumanEval/0#{i}" for i in range(PER_PROBLEM)]
    # Each completion is its own draw: seed offset by its index, its own cache entry.
    seeds = [json.loads(s)["seed"] for s in generations["sampling_params"].head(PER_PROBLEM)]
    assert seeds == list(range(PER_PROBLEM))
    assert generations["request_hash"].n_unique() == generations.height

    scores = store.read("scores", dataset="humaneval", model="fake-coder").filter(
        pl.col("metric") == "pass"
    )
    assert scores.height == PROBLEMS * PER_PROBLEM
    per_problem = (
        scores.with_columns(pl.col("sample_id").str.split("#").list.first().alias("problem"))
        .group_by("problem", maintain_order=True)
        .agg(pl.len().alias("n"), pl.col("value").sum().cast(pl.Int64).alias("c"))
    )
    counts = list(per_problem.select("n", "c").iter_rows())
    assert all(n == PER_PROBLEM for n, _ in counts)
    # The planted failures make the problems differ, so pass@k is not just the pass rate.
    assert len({c for _, c in counts}) > 1 and 0 < sum(c for _, c in counts) < scores.height

    aggregates = store.read("aggregates", dataset="humaneval", model="fake-coder")
    by_metric = {r["metric"]: r for r in aggregates.iter_rows(named=True)}
    assert set(by_metric) >= {"pass", "pass:pass@2", "pass:pass@5"}
    for k in (1, 2, 5):
        want = sum(_unbiased(n, c, k) for n, c in counts) / len(counts)
        got = by_metric["pass"]["pass_at_1"] if k == 1 else by_metric[f"pass:pass@{k}"]["mean"]
        assert got == pytest.approx(want)
    assert by_metric["pass:pass@5"]["n"] == PROBLEMS

    # A re-run asks the model nothing: every draw is cached under its own seed.
    again = materialize(project, store_root, "humaneval|fake-coder", sample_limit=PROBLEMS)
    assert materialization_metadata(again, "generations")["model_calls"] == 0


def test_the_check_finds_a_missing_completion_of_a_problem(tmp_path):
    project = _project(tmp_path)
    store_root = tmp_path / "store"
    assert materialize(project, store_root, "humaneval|fake-coder", sample_limit=2).success
    store = Store(store_root)
    generations = store.read("generations", dataset="humaneval", model="fake-coder")
    outcome = checks.generations_complete(store, "humaneval", "fake-coder", per_problem=PER_PROBLEM)
    assert outcome.passed, outcome.description
    # Drop the third completion of the first problem.
    store.write(
        "generations",
        generations.filter(pl.col("sample_id") != "HumanEval/0#2"),
        dataset="humaneval",
        model="fake-coder",
    )
    outcome = checks.generations_complete(store, "humaneval", "fake-coder", per_problem=PER_PROBLEM)
    assert not outcome.passed
    assert "HumanEval/0#2" in outcome.description


def test_several_samples_at_temperature_zero_are_refused(tmp_path):
    project = _project(tmp_path, sampling={"max_tokens": 320})
    with pytest.raises(CatalogError, match=r"samples_per_problem: 5 needs a temperature above 0"):
        load_catalog(project)
