"""Hostile provider answers: a valid answer or a retried ``malformed`` failure, never cached.

Hypothesis builds response bodies field by field (types, nulls, lists, missing and extra
fields, refusals, tool calls, logprob blocks). The bulk goes straight to the readers each
provider's ``parse`` calls; a handful per provider go over loopback HTTP through the real
``openai`` and ``anthropic`` SDKs, and through the engine with a cache.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
    Message,
    SamplingParams,
)
from eval_pipeline.engine import ResponseCache
from eval_pipeline.engine.run import run_requests
from eval_pipeline.providers import RequestFailure, checked_response, create_provider
from eval_pipeline.providers._answers import Json, prompt_logprobs
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, TEST_KEY
from eval_pipeline_tests.hostile_shapes import READERS, Shape, json_values, shapes


def _accepts_or_refuses(provider: str, shape: Shape, cache: ResponseCache, key: str) -> None:
    """The reader's verdict on ``shape``, and that an accepted answer caches as itself."""
    try:
        answer = READERS[provider](shape.body)
    except RequestFailure as failure:
        assert failure.kind == "malformed" and failure.retryable
        assert shape.expected is None, f"a valid answer was refused: {failure}"
        return
    if shape.expected is not None:
        assert answer.text == shape.expected
    response = checked_response(
        GenerationResponse(
            answer.text, answer.finish_reason, answer.input_tokens, answer.output_tokens, 0.1
        )
    )
    cache.put(key, response)
    assert cache.get(key) == response
    assert not cache.damaged


@pytest.fixture(scope="module")
def cache() -> Iterator[ResponseCache]:
    with tempfile.TemporaryDirectory() as directory:
        yield ResponseCache(directory)


@pytest.mark.parametrize("provider", sorted(READERS))
def test_every_generated_body_is_an_answer_or_a_retried_malformed_failure(
    provider: str, cache: ResponseCache
) -> None:
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(shapes(provider))
    def check(shape: Shape) -> None:
        _accepts_or_refuses(provider, shape, cache, provider[:2] + "0" * 22)

    check()


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_any_json_value_at_all_is_read_or_refused_by_every_reader(body: Json) -> None:
    for reader in READERS.values():
        try:
            reader(body)
        except RequestFailure as failure:
            assert failure.kind == "malformed"
    try:
        prompt_logprobs(body, "ctx")
    except RequestFailure as failure:
        assert failure.kind == "malformed"


@pytest.mark.parametrize(
    "body,why",
    [
        ({"choices": [{"message": {"content": ["a", "b"]}}]}, "content is list"),
        ({"choices": [{"message": {"content": 7}}]}, "content is int"),
        ({"choices": {"0": {"message": {"content": "x"}}}}, "choices is dict"),
        ({"choices": [{"message": {"content": "x"}, "finish_reason": 3}]}, "finish_reason"),
        ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": -1}}, "token"),
        ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1e400}}, "token"),
        ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": True}}, "token"),
        ({"choices": [{"message": {"content": "x"}}], "model": ["m"]}, "model is list"),
        (
            {"choices": [{"message": {"content": None, "tool_calls": [{"id": "c"}]}}]},
            "tool call",
        ),
        (["not", "an", "object"], "the body is list"),
    ],
)
def test_shapes_that_were_once_cached_are_malformed(body: Json, why: str) -> None:
    with pytest.raises(RequestFailure) as info:
        READERS["openai"](body)
    assert info.value.kind == "malformed"
    assert why in str(info.value)


def test_a_refusal_and_a_reply_after_a_tool_call_are_answers() -> None:
    refusal = {"choices": [{"message": {"content": None, "refusal": "No."}}]}
    assert READERS["openai"](refusal).text == "No."
    blocks = [{"type": "tool_use", "input": {}}, {"type": "text", "text": "4"}]
    answer = READERS["anthropic"]({"content": blocks, "usage": {"output_tokens": 1}})
    assert (answer.text, answer.output_tokens) == ("4", 1)


def test_a_nan_log_probability_or_ragged_lists_are_malformed() -> None:
    block = {"tokens": ["a", "b"], "token_logprobs": [None, math.nan], "text_offset": [0, 1]}
    with pytest.raises(RequestFailure, match="finite"):
        prompt_logprobs({"choices": [{"logprobs": block}]}, "a")
    ragged = {**block, "text_offset": [0]}
    with pytest.raises(RequestFailure, match="differ in length"):
        prompt_logprobs({"choices": [{"logprobs": ragged}]}, "a")
    good = {**block, "token_logprobs": [None, -0.5]}
    assert prompt_logprobs({"choices": [{"logprobs": good}]}, "a") == (-0.5, 1, 1)


@pytest.mark.parametrize(
    "response",
    [
        GenerationResponse(7, "stop"),  # type: ignore[arg-type]  # the hostile case
        GenerationResponse("x", None),  # type: ignore[arg-type]
        GenerationResponse("x", "stop", -1),
        GenerationResponse("x", "stop", latency_s=math.nan),
        GenerationResponse("x", "stop", info={"choice_logprobs": {"A": math.nan}}),
        GenerationResponse("x", "stop", info={1: "non-string key"}),  # type: ignore[dict-item]
        GenerationResponse(
            "A", "stop", choice_scores=ChoiceScores((ContinuationScore("A", math.nan, 1),))
        ),
        GenerationResponse(
            "A", "stop", choice_scores=ChoiceScores((ContinuationScore("A", -1.0, -3),))
        ),
    ],
)
def test_a_local_backends_malformed_answer_is_never_cached(
    tmp_path: Path, response: GenerationResponse
) -> None:
    cache = ResponseCache(tmp_path)
    with pytest.raises(RequestFailure):
        cache.put("d" * 24, response)
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    "entry",
    [
        b"{trunc",
        b"[1, 2]",
        b'{"completion": 5, "finish_reason": "stop"}',
        b'{"completion": "x", "finish_reason": "stop", "input_tokens": "3"}',
        b'{"completion": null, "finish_reason": "stop"}',
        b'{"completion": "x", "finish_reason": "stop", "surprise": 1}',
        b'{"completion": "x", "finish_reason": "stop", "info": {"a": NaN}}',
        b'{"completion": "x", "finish_reason": "stop", "choice_scores": {"scores": [["A", "x", 1, null]]}}',
        b'{"completion": "x", "finish_reason": "stop", "choice_scores": {"scores": 5}}',
        b'{"completion": "x", "finish_reason": "stop", "info": {"choice_logprobs": {"A": "x"}}}',
        b'{"completion": "x", "finish_reason": "stop", "info": []}',
    ],
)
def test_a_cached_entry_that_does_not_parse_is_a_reported_miss(
    tmp_path: Path, entry: bytes
) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("e" * 24, GenerationResponse("x", "stop"))
    path = tmp_path / "ee" / ("e" * 24 + ".json")
    path.write_bytes(entry)
    assert cache.get("e" * 24) is None
    assert [p for p, _ in cache.damaged] == [str(path)]


# --- over loopback HTTP, through the real SDKs --------------------------------------------


class _Served:
    """A loopback HTTP server that answers every POST with ``body`` (a 200)."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  # the http.server hook name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                served.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, body: Json) -> None:
        self.body = json.dumps(body).encode()
        self.requests = 0


@pytest.fixture(scope="module")
def served() -> Iterator[_Served]:
    server = _Served()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _spec(provider: str, url: str, retries: int = 0) -> ModelSpec:
    base_url = url + "/v1" if provider.startswith("openai") else url
    return ModelSpec.model_validate(
        {
            "slug": "hostile",
            "provider": provider,
            "model_id": "m",
            "options": {
                "api_key_env": KEY_ENV,
                "base_url": base_url,
                "max_retries": retries,
                "backoff_initial_s": 0.001,
                "backoff_max_s": 0.002,
            },
        }
    )


def _request(n: int = 0, prompt_format: str = "chat") -> GenerationRequest:
    return GenerationRequest(
        request_hash=f"{n:024d}",
        sample_id=f"s{n}",
        messages=(Message("user", "q"),),
        sampling=SamplingParams(),
        prompt_format=prompt_format,  # type: ignore[arg-type]  # a PromptFormat
    )


@pytest.mark.parametrize("provider", sorted(READERS))
def test_generated_bodies_through_the_real_sdk_are_answers_or_malformed(
    provider: str, served: _Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    fmt = "completion" if provider == "openai_completions" else "chat"

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(shapes(provider))
    def check(shape: Shape) -> None:
        served.serve(shape.body)
        model = create_provider(_spec(provider, served.url))
        try:
            response = asyncio.run(_once(model, _request(prompt_format=fmt)))
        except RequestFailure as failure:
            assert failure.kind == "malformed", failure
            assert shape.expected is None
        else:
            assert checked_response(response) is response
            if shape.expected is not None:
                assert response.completion == shape.expected

    check()


async def _once(model: object, request: GenerationRequest) -> GenerationResponse:
    try:
        return await model.agenerate(request)  # type: ignore[attr-defined, no-any-return]
    finally:
        await model.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "provider,body",
    [
        ("openai", {"choices": [{"message": {"content": {"text": "x"}}}]}),
        ("openai", {"choices": [{"message": {"content": "x"}, "finish_reason": 1}]}),
        ("anthropic", {"content": [{"type": "text", "text": ["x"]}]}),
        ("anthropic", {"content": "x", "usage": {"output_tokens": 1}}),
    ],
)
def test_a_malformed_answer_is_retried_and_never_cached(
    provider: str, body: Json, served: _Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    served.serve(body)
    spec = _spec(provider, served.url, retries=2)
    cache = ResponseCache(tmp_path)
    result = run_requests(create_provider(spec), spec, [_request(1)], cache)
    (response,) = result.responses
    assert response.error is not None and "malformed" not in (response.completion or "")
    assert "response is not" in response.error
    assert served.requests == 3  # the first attempt and two retries
    assert not list(tmp_path.rglob("*.json"))
    # The server mends its answer: the rerun sends the request and caches the answer.
    served.serve(
        {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}}
        if provider == "openai"
        else {"content": [{"type": "text", "text": "ok"}], "usage": {"output_tokens": 1}}
    )
    again = run_requests(create_provider(spec), spec, [_request(1)], cache)
    assert again.responses[0].completion == "ok" and again.cached == [False]
    assert cache.get(_request(1).request_hash) is not None


def test_an_answer_past_the_output_size_limit_is_malformed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EVAL_PIPELINE_MAX_ANSWER_CHARS", "10")
    with pytest.raises(RequestFailure, match="11 characters, more than the 10"):
        checked_response(GenerationResponse("x" * 11, "stop"))
    assert checked_response(GenerationResponse("x" * 10, "stop")).completion == "x" * 10
    cache = ResponseCache(tmp_path)
    with pytest.raises(RequestFailure):
        cache.put("f" * 24, GenerationResponse("x" * 11, "stop"))
    assert not list(tmp_path.rglob("*.json"))


def test_a_damaged_cache_entry_is_sent_again_counted_and_replaced_never_a_failure(
    served: _Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    served.serve(
        {"choices": [{"message": {"content": "fresh"}}], "usage": {"completion_tokens": 1}}
    )
    spec = _spec("openai", served.url)
    cache = ResponseCache(tmp_path)
    key = _request(2).request_hash
    cache.put(key, GenerationResponse("stale", "stop", 1, 1))
    (tmp_path / key[:2] / f"{key}.json").write_text('{"completion": ["hand", "edited"]}')
    result = run_requests(create_provider(spec), spec, [_request(2)], cache)
    assert result.responses[0].completion == "fresh" and result.cached == [False]
    assert result.stats.cache_damaged == 1 and served.requests == 1
    assert cache.get(key) is not None and cache.get(key).completion == "fresh"


def test_the_generations_metadata_counts_the_damaged_cache_entries(tmp_path: Path) -> None:
    import dagster as dg

    from eval_pipeline.storage import Store
    from eval_pipeline_tests.helpers import materialize
    from eval_pipeline_tests.projects import make_project

    project = make_project(tmp_path / "project", datasets=("qa",))
    store_root = tmp_path / "store"
    with dg.instance_for_test() as instance:
        first = materialize(project, store_root, "qa|fake-good", sample_limit=2, instance=instance)
        assert first.success
        entries = sorted(Store(store_root).cache_dir.rglob("*.json"))
        assert len(entries) == 2
        entries[0].write_text('{"completion": ["hand", "edited"]}')
        again = materialize(project, store_root, "qa|fake-good", sample_limit=2, instance=instance)
        [event] = again.asset_materializations_for_node("generations")
    assert event.metadata["cache_damaged"].value == 1
    assert event.metadata["model_calls"].value == 1
