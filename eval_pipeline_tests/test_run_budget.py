"""A run's budget covers every partition and judge call; concurrent runs share a model's rate."""

from __future__ import annotations

import json
import shutil
import sys

import yaml

from eval_pipeline.cli import main
from eval_pipeline.engine.leases import STALE_S, RateLease
from eval_pipeline.storage import Store
from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver import ServerConfig, api_model, make_api_project
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture
from eval_pipeline_tests.judge_helpers import judged_project
from eval_pipeline_tests.projects import REPO

api_server = api_server_fixture()
_api_key = api_key_fixture()

# 1000 $ per million tokens: a request costs about a cent.
PRICEY = (1000.0, 1000.0)


def _two_dataset_project(tmp_path, model: dict, samples: int):
    project = make_api_project(tmp_path / "project", [model], samples)
    second = project / "datasets" / "synth2"
    shutil.copytree(project / "datasets" / "synth", second)
    spec = yaml.safe_load((second / "dataset.yaml").read_text())
    spec["name"] = "synth2"
    (second / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    # Other questions, so no request of one dataset is answered from the other's cache.
    data = (second / "data.jsonl").read_text().replace("Question number", "Second question")
    (second / "data.jsonl").write_text(data)
    return project


def test_the_cli_budget_holds_across_every_partition_of_the_invocation(
    api_server, tmp_path, monkeypatch
):
    api_server.configure(ServerConfig(latency_s=0.0))
    model = api_model(
        "api-model", "openai", api_server.openai_base_url, pricing=PRICEY, api_key_env=KEY_ENV
    )
    project = _two_dataset_project(tmp_path, model, 40)
    store = tmp_path / "store"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    argv = ["--root", str(project), "--store", str(store), "run", "--model", "api-model"]
    code = main([*argv, "--dataset", "synth", "--dataset", "synth2", "--full", "--budget", "0.3"])
    assert code == 1  # the budget stopped the run before every row was answered

    frames = [
        Store(store).read("generations", dataset=d, model="api-model") for d in ("synth", "synth2")
    ]
    spent = sum(f["cost_usd"].sum() for f in frames)
    answered = sum(f["completion"].is_not_null().sum() for f in frames)
    assert spent <= 0.3
    # Each partition alone could have spent the whole budget; together they stayed in it.
    assert 10 < answered < 40
    assert api_server.stats()["requests"] == answered
    assert all(f["error"].str.starts_with("not attempted: spend budget").any() for f in frames[1:])


def test_judge_calls_spend_from_the_run_budget(api_server, tmp_path, monkeypatch):
    api_server.configure(ServerConfig(latency_s=0.0))
    project = judged_project(tmp_path / "p", judges=("api-judge",))
    models = yaml.safe_load((project / "models.yaml").read_text())
    judge = api_model(
        "api-judge",
        "openai",
        api_server.openai_base_url,
        pricing=(100.0, 100.0),
        api_key_env=KEY_ENV,
    )
    models["models"].append(judge)
    (project / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    store = tmp_path / "store"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    argv = ["--root", str(project), "--store", str(store), "run", "--model", "fake-good"]
    assert main([*argv, "--dataset", "open-qa", "--limit", "5", "--budget", "0.5"]) == 1
    # The fake generator costs nothing; the judge's calibration calls (42 labelled
    # responses) ran into the budget.
    sent = api_server.stats()["requests"]
    assert 0 < sent < 42
    (ledger,) = (Store(store).runs_dir / "budgets").glob("cli-*.json")
    spent = json.loads(ledger.read_text())["spent_usd"]
    assert 0 < spent <= 0.5
    assert not Store(store).exists("scores", dataset="open-qa", model="fake-good")


def test_a_lease_counts_the_live_processes_and_drops_the_stale(tmp_path):
    import os
    import time

    with RateLease(tmp_path, ("openai", "http://x", "m")) as mine:
        assert mine.holders() == 1
        other = mine.folder / "otherhost.4242.lease"
        other.touch()
        assert mine.holders() == 2
        old = time.time() - STALE_S - 1
        os.utime(other, (old, old))
        assert mine.holders() == 1
        assert not other.exists()
    assert not mine.path.exists()


CHILD = """
import sys
from pathlib import Path
from eval_pipeline_tests.apiserver import materialize_api
result = materialize_api(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
sys.exit(0 if result.success else 1)
"""


def test_two_processes_running_one_model_share_its_request_rate(api_server, tmp_path):
    # The server allows what the catalog says; two runs at once must not take twice that.
    api_server.configure(ServerConfig(rate_limit_rpm=3000, latency_s=0.0))
    model = api_model(
        "api-model",
        "openai",
        api_server.openai_base_url,
        concurrency=8,
        requests_per_minute=3000,
        api_key_env=KEY_ENV,
        backoff_initial_s=0.05,
    )
    project = _two_dataset_project(tmp_path, model, 150)
    store = tmp_path / "store"
    child = [sys.executable, "-c", CHILD, str(project), str(store)]
    with (
        processes.started([*child, "synth|api-model"], cwd=REPO) as first,
        processes.started([*child, "synth2|api-model"], cwd=REPO) as second,
    ):
        assert [r.wait(timeout=300) for r in (first, second)] == [0, 0]
    stats = api_server.stats()
    answered = sum(
        Store(store)
        .read("generations", dataset=d, model="api-model")["completion"]
        .is_not_null()
        .sum()
        for d in ("synth", "synth2")
    )
    assert answered == 300
    # Each process took half the catalog's rate once it saw the other's lease: next to no
    # 429s (each taking the whole rate, the two drew 18 of 318 here).
    assert stats["by_outcome"].get("rate_limited", 0) <= 6, stats
    assert stats["requests"] <= 306
