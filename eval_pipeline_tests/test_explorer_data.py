"""The results explorer's data files hold exactly the stored Parquet rows."""

from __future__ import annotations

import csv
import json
import re

import polars as pl
import pytest
import yaml

from eval_pipeline import stages
from eval_pipeline.catalog import load_catalog
from eval_pipeline.judge import (
    SELF_CONSISTENCY_ITEMS,
    alpaca_eval_rows,
    import_labels,
    load_calibration_document,
)
from eval_pipeline.report import ExplorerInput, partition_id, trust_figures, write_explorer_files
from eval_pipeline.stages import explorer_dir, write_explorer
from eval_pipeline.storage import Store
from eval_pipeline_tests.explorer_helpers import PLANTED, explorer_store, read_data_file
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project
from eval_pipeline_tests.projects import make_project


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer-data")
    setup = explorer_store(tmp, partitions=("json-extract|fake-echo",))
    store = Store(setup["store"])
    return {**setup, "store": store, "index": explorer_dir(store) / "index.html"}


def test_the_reporting_step_writes_the_explorer_with_no_remote_resources(written):
    folder = written["index"].parent
    page = written["index"].read_text()
    assert '<script src="data/index.js">' in page and '<script src="explorer.js">' in page
    for name in ("index.html", "explorer.js", "explorer.css", "data/index.js"):
        text = (folder / name).read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name
        assert not re.search(r"\bfetch\(\s*[^)]", text), name


def test_every_partition_has_a_heatmap_cell_with_its_aggregates(written):
    store = written["store"]
    (index,) = read_data_file(explorer_dir(store) / "data" / "index.js")
    aggregates = store.scan("aggregates").collect()
    cells = {(index["datasets"][c[0]]["name"], index["models"][c[1]]): c for c in index["cells"]}
    assert set(cells) == {("json-extract", "fake-echo"), ("qa", "fake-model")}
    for (dataset, model), cell in cells.items():
        metric = index["datasets"][cell[0]]["metric"]
        row = aggregates.filter(
            (pl.col("dataset") == dataset)
            & (pl.col("model") == model)
            & (pl.col("metric") == metric)
        ).row(0, named=True)
        assert cell[2:8] == [
            row["mean"],
            row["ci_low"],
            row["ci_high"],
            row["n"],
            row["cost_usd"],
            row["error_count"],
        ]
    assert cells[("qa", "fake-model")][8] == 2  # two kept runs


@pytest.mark.parametrize("partition", ["json-extract|fake-echo", PLANTED])
def test_a_partition_file_holds_every_sample_as_stored(written, partition):
    store = written["store"]
    dataset, model = partition.split("|")
    pid, data = read_data_file(
        explorer_dir(store) / "data" / "p" / f"{partition_id(dataset, model)}.js"
    )
    assert pid == partition_id(dataset, model)
    gens = store.read("generations", dataset, model)
    scores = store.read("scores", dataset, model)
    targets = dict(store.read("dataset_samples", dataset).select("sample_id", "target").iter_rows())
    assert [s["id"] for s in data["samples"]] == gens["sample_id"].to_list()
    for sample, row in zip(data["samples"], gens.iter_rows(named=True), strict=True):
        assert sample["output"] == row["completion"]
        assert sample["messages"] == json.loads(row["messages"])
        assert sample["target"] == targets[row["sample_id"]]
        assert (sample["in"], sample["out"], sample["cached"]) == (
            row["input_tokens"],
            row["output_tokens"],
            row["cached"],
        )
        assert sample["cost"] == pytest.approx(row["cost_usd"])
        assert sample["latency"] == pytest.approx(row["latency_s"])
        stored = scores.filter(pl.col("sample_id") == row["sample_id"])
        assert sample["scores"] == {
            m: [v, d] for m, v, d in stored.select("metric", "value", "detail").iter_rows()
        }
    assert (
        data["metric"]
        == load_catalog(written["project"], load_rows=False).dataset_specs[dataset].primary
    )
    assert len(data["runs"]) == len(store.history("aggregates", dataset, model))


def test_the_planted_partition_diff_lists_exactly_the_wrong_samples(written):
    store = written["store"]
    _, data = read_data_file(explorer_dir(store) / "data" / "p" / "qa@fake-model.js")
    (pair,) = data["diff"]["pairs"]
    runs = [e.run_id for e in store.history("scores", "qa", "fake-model")]
    assert (pair["a"], pair["b"]) == (f"run:{runs[0]}", f"run:{runs[1]}")
    comparison = next(c for c in pair["comparisons"] if c["metric"] == data["metric"])
    assert comparison["regressed"] and comparison["test"] == "mcnemar"
    assert {s["sample_id"] for s in comparison["worse"]} == written["planted_wrong"]
    after = data["diff"]["outputs"][pair["b"]]
    assert {after[s] for s in written["planted_wrong"]} == {"I do not know."}


def test_the_explorer_can_be_rewritten_into_another_folder(written, tmp_path):
    catalog = load_catalog(written["project"], load_rows=False)
    index = write_explorer(catalog, written["store"], tmp_path / "out")
    assert index == tmp_path / "out" / "index.html"
    assert sorted(p.name for p in (tmp_path / "out" / "data" / "p").iterdir()) == [
        "json-extract@fake-echo.js",
        "qa@fake-model.js",
    ]


def test_a_judged_partition_carries_every_verdict_on_the_rating_scale(tmp_path):
    project = judged_project(tmp_path / "project")
    materialize(project, tmp_path / "store", "open-qa|fake-good", sample_limit=6)
    store = Store(tmp_path / "store")
    _, data = read_data_file(explorer_dir(store) / "data" / "p" / "open-qa@fake-good.js")
    judged = store.read("judgements", "open-qa", "fake-good")
    assert data["scales"]["helpfulness"] == [1.0, 5.0, "1-5"]
    for sample in data["samples"]:
        rows = judged.filter(pl.col("sample_id") == sample["id"])
        assert [(j["judge"], j["verdict"], j["score"]) for j in sample["judgements"]] == list(
            rows.select("judge", "verdict", "score").iter_rows()
        )
        assert sample["judgements"] and sample["scores"]["helpfulness"][0] == 4.0
    (index,) = read_data_file(explorer_dir(store) / "data" / "index.js")
    assert index["datasets"][0]["scale"] == [1.0, 5.0] and index["datasets"][0]["kind"] == "1-5"


def test_the_explorer_bench_store_holds_every_column_of_the_current_schema(tmp_path):
    # The explorer_open bench writes its synthetic store straight to Parquet: a column the
    # store's schema gained since must not break it (nothing else runs the bench).
    from eval_pipeline.core.schemas import TABLES
    from eval_pipeline_tests.bench.explorer_open import synthetic_store, write_explorer_files

    explorer_input = synthetic_store(tmp_path / "store", 2, 2, 3)
    store = Store(tmp_path / "store")
    for table in ("dataset_samples", "generations", "scores", "aggregates"):
        frame = store.read(table, dataset="set-001", model="model-001")
        assert frame.columns == TABLES[table].names()
        assert frame.height == (1 if table == "aggregates" else 3)
    index = write_explorer_files(store, tmp_path / "explorer", explorer_input)
    assert index.exists()
    listed = (tmp_path / "explorer" / "data" / "index.js").read_text()
    assert all(name in listed for name in ("set-000", "set-001", "model-000", "model-001"))


def _by_figure(figures: list[dict]) -> dict[str, dict]:
    return {f["figure"]: f for f in figures}


def test_a_judged_partition_shows_its_judges_calibration_figures(tmp_path):
    project = judged_project(tmp_path / "project", answers=distorted_label_answers())
    materialize(project, tmp_path / "store", "open-qa|fake-good", sample_limit=4)
    store = Store(tmp_path / "store")
    document = load_calibration_document(store, "fake-judge", "helpfulness")
    _, data = read_data_file(explorer_dir(store) / "data" / "p" / "open-qa@fake-good.js")
    figures = _by_figure(data["trust"])
    assert set(figures) == {"self_consistency", "judge_human_kappa", "judge_human_spearman"}
    consistency = figures["self_consistency"]
    assert (consistency["metric"], consistency["judge"]) == ("helpfulness", "fake-judge")
    assert consistency["value"] == document["self_consistency"]["value"] == 1.0
    assert consistency["n"] == SELF_CONSISTENCY_ITEMS
    kappa = document["judge_human_agreement"]["kappa"]
    assert [figures["judge_human_kappa"][k] for k in ("value", "ci_low", "ci_high")] == [
        kappa["value"],
        kappa["ci_low"],
        kappa["ci_high"],
    ]
    assert figures["judge_human_kappa"]["n"] == 42
    # The same model-independent figures are the dataset's facts in the index.
    (index,) = read_data_file(explorer_dir(store) / "data" / "index.js")
    (column,) = [c for c in index["datasets"] if c["name"] == "open-qa"]
    assert column["trust"] == data["trust"]


def test_a_pairwise_partition_shows_position_bias_and_agreement_with_people(tmp_path):
    models = {
        "models": [
            {"slug": "fake-short", "provider": "fake", "model_id": "fake/short",
             "options": {"mode": "fixed", "text": "A short answer."}},
            {"slug": "fake-pairjudge", "provider": "fake", "model_id": "fake/pairjudge",
             "options": {"mode": "fixed", "text": "[[A]]"}},
        ]
    }  # fmt: skip
    root = make_project(tmp_path / "p", models=models, datasets=("alpacaeval",))
    spec_path = root / "datasets" / "alpacaeval" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = ["fake-pairjudge"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    first = alpaca_eval_rows()[0]
    # One person calls the first pair a tie: the judge (always the first answer, so a
    # tie after the swap) agrees.
    labels = tmp_path / "prefs.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "answer_a", "answer_b", "preferred", "rater"])
        writer.writerow([first["instruction"], "A short answer.", first["baseline"], "tie", "bo"])
    catalog, store = load_catalog(root), Store(tmp_path / "s")
    import_labels(root, labels)
    stages.build_prompt_versions(catalog, store, "alpacaeval")
    stages.build_dataset_samples(catalog, store, "alpacaeval")
    stages.generate(catalog, store, "fake-short", "alpacaeval", sample_limit=3)
    stages.judge_partition(catalog, store, "fake-pairjudge", "fake-short", "alpacaeval")
    stages.score(catalog, store, "fake-short", "alpacaeval")
    frame = stages.aggregate(catalog, store, "fake-short", "alpacaeval").frame
    folder = tmp_path / "explorer"
    write_explorer_files(store, folder, ExplorerInput(primary={"alpacaeval": "win_rate"}))
    _, data = read_data_file(folder / "data" / "p" / "alpacaeval@fake-short.js")
    figures = _by_figure(data["trust"])
    assert set(figures) == {"position_bias", "pairwise_human_agreement"}  # kappa undefined
    bias = figures["position_bias"]
    assert (bias["metric"], bias["judge"], bias["value"], bias["n"]) == ("win_rate", None, 1.0, 3)
    stored = frame.filter(pl.col("metric") == "win_rate:human_agreement").row(0, named=True)
    agreement = figures["pairwise_human_agreement"]
    assert agreement["value"] == stored["mean"] == 1.0 and agreement["n"] == stored["n"] == 1


def test_panel_agreement_rows_become_inter_judge_figures():
    aggregates = pl.DataFrame(
        {
            "metric": ["helpfulness", "helpfulness:agreement_alpha", "helpfulness:agreement_kappa"],
            "mean": [3.5, 0.42, None],
            "ci_low": [3.0, 0.1, None],
            "ci_high": [4.0, 0.7, None],
            "n": [10, 10, 10],
        }
    )
    assert trust_figures(aggregates, None, []) == [
        {
            "figure": "inter_judge_alpha",
            "metric": "helpfulness",
            "judge": None,
            "value": 0.42,
            "ci_low": 0.1,
            "ci_high": 0.7,
            "n": 10,
        }
    ]
