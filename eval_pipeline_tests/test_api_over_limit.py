"""API runs against a server that allows less than the catalog says, and empty answers.

Through the real ``openai`` and ``anthropic`` SDKs against the local server.
"""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.providers import create_provider
from eval_pipeline.providers._api import RequestFailure
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions, generate
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import ServerConfig, answer, api_model, make_api_project
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture

api_server = api_server_fixture()
_api_key = api_key_fixture()

MODEL = "api-model"


def _prepare(tmp_path, api_server, provider: str, samples: int, **model):
    base_url = api_server.openai_base_url if provider == "openai" else api_server.url
    entry = api_model(MODEL, provider, base_url, api_key_env=KEY_ENV, **model)
    project = make_api_project(tmp_path / "project", [entry], samples)
    catalog, store = load_catalog(project), Store(tmp_path / "store")
    build_prompt_versions(catalog, store, "synth")
    build_dataset_samples(catalog, store, "synth")
    return catalog, store


def _answers_are_right(store: Store, samples: int) -> None:
    gens = store.read("generations", dataset="synth", model=MODEL)
    assert gens.height == samples and gens["error"].null_count() == samples
    for messages, completion in zip(gens["messages"], gens["completion"], strict=True):
        assert completion == answer(json.loads(messages))


def test_a_catalog_limit_twice_the_servers_draws_few_429s(api_server, tmp_path):
    # The server allows 1,200 requests a minute; the catalog says 2,400 and 32 in flight.
    # Pacing at the catalog's limit, every other request after the first second was a 429.
    samples = 200
    api_server.configure(ServerConfig(rate_limit_rpm=1200, latency_s=0.02))
    catalog, store = _prepare(
        tmp_path, api_server, "openai", samples, concurrency=32, requests_per_minute=2400
    )
    report = generate(catalog, store, MODEL, "synth")
    stats = api_server.stats()
    limited = stats["by_outcome"].get("rate_limited", 0)
    assert report.errors == 0
    _answers_are_right(store, samples)
    assert stats["requests"] == samples + limited
    assert limited / stats["requests"] < 0.15


def test_two_runs_of_one_model_at_the_same_time_share_its_request_rate(api_server, tmp_path):
    # Each run alone would pace itself to the server's limit; two at once, each at that
    # pace, would send twice what the server allows.
    samples = 60
    api_server.configure(ServerConfig(rate_limit_rpm=1200, latency_s=0.02))
    runs = [
        _prepare(tmp_path / name, api_server, "openai", samples, requests_per_minute=1200)
        for name in ("a", "b")
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda run: generate(*run, MODEL, "synth"), runs))
    stats = api_server.stats()
    assert [r.errors for r in reports] == [0, 0]
    assert stats["requests"] == 2 * samples
    assert stats["by_outcome"] == {"ok": 2 * samples}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_limit_stated_in_rate_limit_headers_is_taken_from_the_first_answers(
    api_server, tmp_path, provider
):
    samples = 60
    api_server.configure(ServerConfig(rate_limit_rpm=1200, rate_limit_headers=True, latency_s=0.02))
    catalog, store = _prepare(
        tmp_path, api_server, provider, samples, concurrency=32, requests_per_minute=2400
    )
    report = generate(catalog, store, MODEL, "synth")
    stats = api_server.stats()
    assert report.errors == 0
    _answers_are_right(store, samples)
    # At most the requests sent before the first answer came back can overrun the limit.
    assert stats["by_outcome"].get("rate_limited", 0) <= 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_empty_and_blank_answers_are_retried_until_a_real_answer_comes(
    api_server, tmp_path, provider
):
    samples = 40
    api_server.configure(ServerConfig(faults={"empty": 0.25, "blank": 0.15}, fault_seed=5))
    catalog, store = _prepare(tmp_path, api_server, provider, samples, backoff_initial_s=0.01)
    report = generate(catalog, store, MODEL, "synth")
    outcomes = api_server.stats()["by_outcome"]
    assert outcomes.get("empty", 0) > 0 and outcomes.get("blank", 0) > 0
    assert report.errors == 0
    assert report.stats.retries == outcomes["empty"] + outcomes["blank"]
    _answers_are_right(store, samples)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_empty_answer_is_an_error_and_is_never_cached(api_server, tmp_path, provider):
    samples = 5
    api_server.configure(ServerConfig(faults={"empty": 1.0}))
    catalog, store = _prepare(
        tmp_path, api_server, provider, samples, max_retries=2, backoff_initial_s=0.01
    )
    report = generate(catalog, store, MODEL, "synth")
    assert report.errors == samples
    assert api_server.stats()["requests"] == 3 * samples
    gens = store.read("generations", dataset="synth", model=MODEL)
    assert gens["completion"].null_count() == samples
    assert gens["error"].str.contains("empty answer").all()
    # The next run sends every row again (nothing empty was cached) and gets the answers.
    api_server.configure(ServerConfig())
    report = generate(catalog, store, MODEL, "synth")
    assert report.errors == 0 and api_server.stats()["requests"] == samples
    _answers_are_right(store, samples)


def _provider(provider: str):
    spec = ModelSpec.model_validate(
        {"slug": "m", "provider": provider, "model_id": "m", "options": {"api_key_env": None}}
    )
    return create_provider(spec)


def _openai(content, reason="stop", tokens=0, **message):
    return {
        "choices": [
            {
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": reason,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": tokens},
    }


def _anthropic(content, reason="end_turn", tokens=0):
    return {
        "content": content,
        "stop_reason": reason,
        "usage": {"input_tokens": 3, "output_tokens": tokens},
    }


@pytest.mark.parametrize(
    "provider,data",
    [
        ("anthropic", _anthropic([])),
        ("anthropic", _anthropic([], tokens=5)),
        (
            "anthropic",
            _anthropic([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], tokens=5),
        ),
        ("anthropic", _anthropic([{"type": "text", "text": ""}], reason="max_tokens")),
        ("openai", {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}}),
        ("openai", _openai(None)),
        ("openai", _openai(None, tokens=4)),
        ("openai", _openai("", reason="length")),
        ("openai", _openai("", reason="stop")),
    ],
)
def test_an_answer_without_text_is_malformed(provider, data):
    with pytest.raises(RequestFailure) as info:
        _provider(provider).parse(data)
    assert info.value.kind == "malformed" and info.value.retryable
    assert "empty answer" in str(info.value)


@pytest.mark.parametrize(
    "provider,data,expected",
    [
        # Output tokens were spent (on hidden reasoning, say) before the length limit: the
        # model's answer, and a retry would give the same.
        ("openai", _openai("", reason="length", tokens=16), ("", "length", 3, 16)),
        (
            "anthropic",
            _anthropic([{"type": "text", "text": ""}], "max_tokens", 16),
            ("", "length", 3, 16),
        ),
        ("openai", _openai(None, reason="content_filter"), ("", "content_filter", 3, 0)),
        (
            "openai",
            _openai(None, tokens=5, refusal="I can't help."),
            ("I can't help.", "refusal", 3, 5),
        ),
        ("anthropic", _anthropic([], reason="refusal"), ("", "refusal", 3, 0)),
        ("anthropic", _anthropic([{"type": "text", "text": "4"}], tokens=1), ("4", "stop", 3, 1)),
    ],
)
def test_empty_text_is_an_answer_when_tokens_were_spent_or_the_answer_was_refused(
    provider, data, expected
):
    answer = _provider(provider).parse(data)
    assert (
        answer.text,
        answer.finish_reason,
        answer.input_tokens,
        answer.output_tokens,
    ) == expected
