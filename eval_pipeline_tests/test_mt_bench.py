"""Multi-turn generation and MT-Bench grading, with fake models (the wheel's real questions)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eval_pipeline import stages
from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.judge import VerdictsMissing, mt_bench_rows
from eval_pipeline.judge._mtbench import parse_rating, prompt_for
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.stages.catalog_tables import build_dataset_samples, build_prompt_versions
from eval_pipeline.storage import Store
from eval_pipeline_tests.projects import make_project

MODELS = {
    "models": [
        {
            "slug": "fake-echo",
            "provider": "fake",
            "model_id": "fake/echo",
            "options": {"mode": "echo"},
        },
        {
            "slug": "fake-rater",
            "provider": "fake",
            "model_id": "fake/rater",
            "options": {"mode": "fixed", "text": "Fine answer. Rating: [[7]]"},
        },
    ]
}


def _project(tmp_path: Path) -> tuple[Catalog, Store]:
    import yaml

    root = make_project(tmp_path / "p", models=MODELS, datasets=("mt-bench",))
    spec_path = root / "datasets" / "mt-bench" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = ["fake-rater"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog, store = load_catalog(root), Store(tmp_path / "s")
    build_prompt_versions(catalog, store, "mt-bench")
    build_dataset_samples(catalog, store, "mt-bench")
    return catalog, store


def test_the_wheel_gives_eighty_two_turn_questions_with_references_where_mt_bench_uses_them():
    rows = mt_bench_rows()
    assert len(rows) == 80 and all(len(r["turns"]) == 2 for r in rows)
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(str(row["category"]), []).append(row)
    assert {c: len(v) for c, v in by_category.items()} == dict.fromkeys(by_category, 10)
    assert len(by_category) == 8
    for category in ("math", "reasoning", "coding"):
        assert all(len(r["references"]) == 2 for r in by_category[category])
    assert all(r["references"] == [] for r in by_category["writing"])
    assert prompt_for("math", 2).name == "single-math-v1-multi-turn"
    assert prompt_for("writing", 1).name == "single-v1"


def test_each_later_turn_is_sent_after_the_models_own_answer_and_every_turn_is_kept(tmp_path):
    catalog, store = _project(tmp_path)
    report = stages.generate(catalog, store, "fake-echo", "mt-bench", sample_limit=3)
    assert report.rows == 3
    rows = store.read("generations", dataset="mt-bench", model="fake-echo")
    samples = {r["id"]: r for r in mt_bench_rows()}
    for row in rows.iter_rows(named=True):
        turns = samples[row["sample_id"]]["turns"]
        # The echo model repeats the last user message: each turn's answer is that turn.
        assert row["turn_completions"] == [turns[0].strip(), turns[1]]
        assert row["completion"] == turns[1]
        messages = json.loads(row["messages"])
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert messages[1]["content"] == row["turn_completions"][0]
    # Two requests per sample, each cached on its own: a rerun sends none.
    assert calls_for("fake-echo") == 6
    stages.generate(catalog, store, "fake-echo", "mt-bench", sample_limit=3)
    assert calls_for("fake-echo") == 6


def test_mt_bench_grades_every_turn_and_scores_per_turn_and_overall(tmp_path):
    catalog, store = _project(tmp_path)
    stages.generate(catalog, store, "fake-echo", "mt-bench", sample_limit=4)
    with pytest.raises(VerdictsMissing, match="MT-Bench rating of turn 1"):
        stages.score(catalog, store, "fake-echo", "mt-bench")
    stats = stages.judge_partition(catalog, store, "fake-rater", "fake-echo", "mt-bench")
    assert stats.model_calls == 8  # two turns of four questions
    judged = store.read("judgements", dataset="mt-bench", model="fake-echo")
    assert sorted(set(judged["metric"])) == ["mt-bench:turn1", "mt-bench:turn2"]
    assert set(judged["prompt_kind"]) == {"mt-bench-single"}
    assert judged["score"].to_list() == [7.0] * 8
    report = stages.score(catalog, store, "fake-echo", "mt-bench")
    assert report.means == {"mt-bench": 7.0, "mt-bench:turn1": 7.0, "mt-bench:turn2": 7.0}


def test_the_judge_sees_the_reference_only_where_mt_bench_gives_it(tmp_path):
    catalog, store = _project(tmp_path)
    stages.generate(catalog, store, "fake-echo", "mt-bench")
    stages.judge_partition(catalog, store, "fake-rater", "fake-echo", "mt-bench")
    judged = store.read("judgements", dataset="mt-bench", model="fake-echo")
    versions = judged.join(
        store.read("dataset_samples", dataset="mt-bench").select("sample_id", "tags"),
        on="sample_id",
    ).with_columns(pl.col("tags").list.first().alias("category"))
    math = versions.filter(pl.col("category") == "math")["rubric_version"]
    writing = versions.filter(pl.col("category") == "writing")["rubric_version"]
    assert all(v.startswith("single-math-v1") for v in math)
    assert all(v.startswith("single-v1") for v in writing)


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Rating: [[8]]", 8.0),
        ("[[10]]", 10.0),
        ("Rating: [6]", 6.0),
        ("[[11]]", None),
        ("ok", None),
    ],
)
def test_a_rating_is_read_from_double_brackets_or_single_ones_within_one_to_ten(reply, rating):
    assert parse_rating(reply) == rating
