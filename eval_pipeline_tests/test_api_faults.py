"""API models under injected faults, materialized through Dagster against the local server."""

from __future__ import annotations

import json

import polars as pl
import pytest

from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import (
    ServerConfig,
    answer,
    api_model,
    make_api_project,
    materialize_api,
)
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture
from eval_pipeline_tests.helpers import materialization_metadata

api_server = api_server_fixture()

# Test-scale deadlines: a hang costs one request deadline, a retry a fraction of a second.
FAST_RETRIES = {
    "api_key_env": KEY_ENV,
    "request_timeout_s": 3.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.5,
}

_api_key = api_key_fixture()


def _assert_every_row_answered_or_errored(gens: pl.DataFrame, samples: int) -> None:
    assert gens.height == samples
    assert gens["sample_id"].n_unique() == samples
    answered = gens.filter(pl.col("completion").is_not_null())
    errored = gens.filter(pl.col("completion").is_null())
    assert errored["error"].null_count() == 0, "a row without a completion must say why"
    assert answered["error"].null_count() == answered.height
    # Each answer is the server's answer to that row's own prompt: no mix-ups between rows.
    for messages, completion in zip(answered["messages"], answered["completion"], strict=True):
        assert completion == answer(json.loads(messages))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_partition_with_injected_429s_5xx_and_hangs_completes_with_exact_request_counts(
    api_server, tmp_path, provider
):
    samples = 500 if provider == "openai" else 150
    api_server.configure(
        ServerConfig(
            latency_s=0.02,
            faults={"429": 0.12, "500": 0.05, "503": 0.03, "hang": 0.02},
            retry_after_s=0.2,
            hang_s=6.0,
            fault_seed=7,
        )
    )
    base_url = api_server.openai_base_url if provider == "openai" else api_server.url
    model = api_model("api-model", provider, base_url, concurrency=32, **FAST_RETRIES)
    project = make_api_project(tmp_path / "project", [model], samples)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")
    stats = api_server.stats()

    gens = Store(tmp_path / "store").read("generations", dataset="synth", model="api-model")
    _assert_every_row_answered_or_errored(gens, samples)
    outcomes = stats["by_outcome"]
    assert outcomes.get("fault_429", 0) > 0 and outcomes.get("hang", 0) > 0
    meta = materialization_metadata(result, "generations")
    # Every HTTP request the engine sent reached the server, and nothing else did.
    assert meta["model_calls"] == stats["requests"]
    assert meta["retries"] == stats["requests"] - samples
    # (At most: on an overloaded machine a 429 can arrive after the client's deadline.)
    assert 0 < meta["rate_limited_responses"] <= outcomes["fault_429"]
    assert result.success == (gens["error"].null_count() == samples)


def test_a_rerun_of_an_answered_partition_sends_nothing_and_no_cache_sends_everything(
    api_server, tmp_path
):
    api_server.configure(ServerConfig())
    model = api_model("api-model", "openai", api_server.openai_base_url, **FAST_RETRIES)
    project = make_api_project(tmp_path / "project", [model], 40)
    assert materialize_api(project, tmp_path / "store", "synth|api-model").success
    assert api_server.stats()["requests"] == 40

    api_server.reset()
    again = materialize_api(project, tmp_path / "store", "synth|api-model")
    assert api_server.stats()["requests"] == 0
    meta = materialization_metadata(again, "generations")
    assert (meta["reused_rows"], meta["model_calls"]) == (40, 0)

    api_server.reset()
    fresh = materialize_api(project, tmp_path / "store", "synth|api-model", use_cache=False)
    assert api_server.stats()["requests"] == 40
    assert materialization_metadata(fresh, "generations")["new_rows"] == 40


def test_a_run_limited_to_the_servers_rate_sees_no_429s(api_server, tmp_path):
    # The server refills one request every 50 ms and holds one second's worth; the client
    # would send 32 at once without its limiter.
    api_server.configure(ServerConfig(rate_limit_rpm=1200))
    model = api_model(
        "api-model", "openai", api_server.openai_base_url, requests_per_minute=1200, **FAST_RETRIES
    )
    project = make_api_project(tmp_path / "project", [model], 40)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")
    stats = api_server.stats()
    assert result.success
    assert stats["by_outcome"] == {"ok": 40}


def test_bad_requests_are_recorded_at_once_without_retries(api_server, tmp_path):
    api_server.configure(ServerConfig(fail_status=400))
    model = api_model("api-model", "openai", api_server.openai_base_url, **FAST_RETRIES)
    project = make_api_project(tmp_path / "project", [model], 10)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")
    assert not result.success  # the generations_complete check fails the run
    assert api_server.stats()["requests"] == 10
    gens = Store(tmp_path / "store").read("generations", dataset="synth", model="api-model")
    assert gens["error"].str.starts_with("HTTP 400").all()
