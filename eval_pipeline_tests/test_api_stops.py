"""API runs that must stop early: bad credentials, a dead server, the budget, the wall-clock cap."""

from __future__ import annotations

import polars as pl

from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import (
    ServerConfig,
    api_model,
    free_port,
    make_api_project,
    materialize_api,
)
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture

api_server = api_server_fixture()

FAST = {
    "api_key_env": KEY_ENV,
    "request_timeout_s": 2.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.3,
}

_api_key = api_key_fixture()


def step_failure(result, step: str = "generations") -> str:
    """The error message of ``step``'s failure in an in-process run."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key == step:
            error, messages = event.step_failure_data.error, []
            while error is not None:  # Dagster wraps the asset's exception as the cause
                messages.append(error.message)
                error = error.cause
            return "\n".join(messages)
    raise AssertionError(f"step {step} did not fail")


def _generations(tmp_path) -> pl.DataFrame:
    return Store(tmp_path / "store").read("generations", dataset="synth", model="api-model")


def test_a_permanent_401_stops_the_partition_at_once(api_server, tmp_path):
    api_server.configure(ServerConfig(required_key="sk-the-right-key"))
    model = api_model("api-model", "openai", api_server.openai_base_url, concurrency=4, **FAST)
    project = make_api_project(tmp_path / "project", [model], 60)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")

    assert not result.success
    # Only the first wave was in flight when the 401 came back; nothing was retried.
    assert api_server.stats()["requests"] <= 4
    message = step_failure(result)
    assert "HTTP 401" in message and f"${KEY_ENV}" in message
    gens = _generations(tmp_path)
    assert gens.height == 60 and gens["completion"].null_count() == 60
    assert (gens["finish_reason"] == "not_attempted").sum() >= 56
    assert gens["error"].str.starts_with("not attempted: provider 'openai'").sum() >= 56


def test_a_missing_api_key_fails_before_any_request_naming_the_variable(
    api_server, tmp_path, monkeypatch
):
    api_server.configure(ServerConfig())
    monkeypatch.delenv(KEY_ENV)
    model = api_model("api-model", "anthropic", api_server.url, **FAST)
    project = make_api_project(tmp_path / "project", [model], 5)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")
    assert not result.success
    assert f"environment variable {KEY_ENV} is not set" in step_failure(result)
    assert api_server.stats()["requests"] == 0


def test_the_circuit_breaker_opens_on_a_dead_server(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connections are refused
    model = api_model("api-model", "openai", dead, concurrency=4, breaker_failures=6, **FAST)
    project = make_api_project(tmp_path / "project", [model], 200)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")

    assert not result.success
    message = step_failure(result)
    assert "circuit breaker opened" in message and "6 consecutive failed requests" in message
    assert "materialize the partition again" in message
    gens = _generations(tmp_path)
    assert gens.height == 200 and gens["completion"].null_count() == 200
    # The breaker opened after a handful of attempts; most rows were never sent.
    assert (gens["finish_reason"] == "not_attempted").sum() >= 190
    assert gens["error"].str.contains("connection error").any()


def test_the_circuit_breaker_opens_on_a_server_that_hangs(api_server, tmp_path):
    api_server.configure(ServerConfig(faults={"hang": 1.0}, hang_s=5.0))
    options = {**FAST, "request_timeout_s": 0.5}
    model = api_model(
        "api-model",
        "openai",
        api_server.openai_base_url,
        concurrency=4,
        breaker_failures=4,
        **options,
    )
    project = make_api_project(tmp_path / "project", [model], 100)
    result = materialize_api(project, tmp_path / "store", "synth|api-model")
    assert "circuit breaker opened" in step_failure(result)
    assert "request deadline" in step_failure(result)
    assert api_server.stats()["requests"] <= 8


def test_the_budget_stops_spending_and_keeps_what_was_paid_for(api_server, tmp_path):
    api_server.configure(ServerConfig(latency_s=0.01))
    # 1000 $ per million tokens: a request here costs about a cent.
    model = api_model(
        "api-model",
        "openai",
        api_server.openai_base_url,
        concurrency=4,
        pricing=(1000.0, 1000.0),
        **FAST,
    )
    project = make_api_project(tmp_path / "project", [model], 200)
    result = materialize_api(project, tmp_path / "store", "synth|api-model", budget_usd=0.25)

    assert not result.success
    assert "spend budget of $0.2500 reached" in step_failure(result)
    gens = _generations(tmp_path)
    paid = gens.filter(pl.col("completion").is_not_null())
    sent = api_server.stats()["requests"]
    assert 0 < paid.height == sent < 200
    assert paid["cost_usd"].sum() <= 0.25
    assert gens["error"].str.starts_with("not attempted: spend budget").sum() == 200 - sent

    # A bigger budget resumes: the paid rows come from the cache, only the rest is sent.
    api_server.reset()
    resumed = materialize_api(project, tmp_path / "store", "synth|api-model", budget_usd=100.0)
    assert resumed.success
    assert api_server.stats()["requests"] == 200 - sent


def test_the_partition_wall_clock_cap_records_the_rest_as_not_attempted(api_server, tmp_path):
    api_server.configure(ServerConfig(latency_s=0.25))
    model = api_model("api-model", "openai", api_server.openai_base_url, concurrency=4, **FAST)
    project = make_api_project(tmp_path / "project", [model], 200)
    result = materialize_api(
        project, tmp_path / "store", "synth|api-model", partition_timeout_s=1.0
    )
    assert "wall-clock cap of 1 s" in step_failure(result)
    gens = _generations(tmp_path)
    assert gens.height == 200
    assert (gens["finish_reason"] == "not_attempted").sum() > 100
