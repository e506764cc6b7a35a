"""The first edit a user makes: the shipped catalog plus one OpenAI-compatible model.

The model is served by the local API server over loopback (the real `openai` SDK talks to
it). The catalog must load, the definitions must build, `eval-pipeline run` on `qa` must
succeed, and every other cell must do what datasets/README.md says: a log-likelihood
multiple-choice dataset asks for a letter, a dataset of texts to score is not applicable.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.cli import main
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import api_model
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, TEST_KEY, api_server_fixture
from eval_pipeline_tests.projects import REPO, make_project

api_server = api_server_fixture()

SLUG = "gpt-local"
# What datasets/README.md ("Any model on any dataset") says each kind of cell does.
EXPECTED = {
    "generate": {"qa", "json-extract", "humaneval", "open-qa", "gsm8k-cot", "ifeval"},
    "not_applicable": {"lambada-openai"},
}


@pytest.fixture
def shipped_plus_api(tmp_path, api_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    shipped = [p.name for p in (REPO / "datasets").iterdir() if (p / "dataset.yaml").exists()]
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    models["models"].append(
        api_model(SLUG, "openai", api_server.openai_base_url, api_key_env=KEY_ENV)
    )
    project = make_project(tmp_path / "project", models=models, datasets=tuple(shipped))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return project, tmp_path / "store"


def test_the_shipped_catalog_loads_with_an_api_model_and_each_cell_says_how_it_answers(
    shipped_plus_api,
):
    from eval_pipeline.defs import build_definitions

    project, store_root = shipped_plus_api
    catalog = load_catalog(project, load_rows=False)
    assert SLUG in catalog.models and "smollm2-135m" in catalog.models
    defs = build_definitions(str(project), str(store_root))
    assert defs.resolve_job_def("evaluation_job") is not None
    modes = {d: catalog.answer_mode(SLUG, d) for d in catalog.dataset_names}
    for mode, datasets in EXPECTED.items():
        assert {d for d in datasets if modes[d] != mode} == set(), mode
    # Every multiple-choice dataset scored by log-likelihood asks this model for a letter:
    # the shipped BIG-bench ones and lm-eval's multiple-choice tasks.
    choice = {d for d, s in catalog.dataset_specs.items() if s.loglikelihood}
    choice |= {"arc-easy", "arc-challenge", "hellaswag", "mmlu"}
    assert "bigbench-navigate" in choice
    assert {modes[d] for d in choice} == {"generate"}
    # The shipped model scores the same choices by log-likelihood.
    assert catalog.answer_mode("smollm2-135m", "arc-easy") == "loglikelihood"


def test_run_on_qa_succeeds_and_other_cells_answer_as_documented(shipped_plus_api, capsys):
    project, store_root = shipped_plus_api
    base = ["--root", str(project), "--store", str(store_root), "run", "--model", SLUG]
    assert main([*base, "--dataset", "qa", "--limit", "4"]) == 0
    store = Store(store_root)
    qa = store.read("generations", dataset="qa", model=SLUG)
    assert qa.height == 4 and qa["error"].null_count() == 4
    assert set(qa["answer_mode"]) == {"generate"}
    # ARC-Easy: a letter is asked for; LAMBADA: not applicable, no request sent.
    assert (
        main([*base, "--dataset", "arc-easy", "--dataset", "lambada-openai", "--limit", "2"]) == 0
    )
    arc = store.read("generations", dataset="arc-easy", model=SLUG)
    assert set(arc["answer_mode"]) == {"generate"}
    user = json.loads(arc["messages"][0])[-1]["content"]
    assert "\n\nA. " in user and "one letter (A-D)" in user
    assert store.read("generations", dataset="lambada-openai", model=SLUG).height == 0
    board = store.read("leaderboard").filter(pl.col("model") == SLUG)
    modes = dict(zip(board["dataset"], board["answer_mode"], strict=True))
    assert modes == {"qa": "generate", "arc-easy": "generate", "lambada-openai": "not_applicable"}
    out = capsys.readouterr()
    assert "lambada-openai|gpt-local: not applicable:" in out.err
    assert "| gpt-local | lambada-openai | acc | not applicable | 0 | n/a |" in out.out
