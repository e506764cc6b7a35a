"""The request hash and the response cache."""

from __future__ import annotations

from eval_pipeline.core.types import GenerationResponse, Message, SamplingParams
from eval_pipeline.engine import ResponseCache, request_hash

IDENTITY = {"provider": "fake", "model_id": "m", "revision": None, "adapter": None}
MESSAGES = (Message("user", "hi"),)


def test_request_hash_changes_with_every_part_of_the_request():
    base = request_hash(IDENTITY, SamplingParams(), MESSAGES)
    assert base == request_hash(dict(IDENTITY), SamplingParams(), (Message("user", "hi"),))
    assert base != request_hash({**IDENTITY, "revision": "r2"}, SamplingParams(), MESSAGES)
    assert base != request_hash(IDENTITY, SamplingParams(seed=1), MESSAGES)
    assert base != request_hash(IDENTITY, SamplingParams(max_tokens=9), MESSAGES)
    assert base != request_hash(IDENTITY, SamplingParams(), (Message("user", "hi!"),))


def test_cache_round_trips_successes_and_never_stores_errors(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put("a" * 24, GenerationResponse("hello", "stop", 3, 1, 0.5))
    cache.put("b" * 24, GenerationResponse(None, "error", error="boom"))
    hit = cache.get("a" * 24)
    assert (hit.completion, hit.output_tokens) == ("hello", 1)
    assert cache.get("b" * 24) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_damaged_cache_entry_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put("c" * 24, GenerationResponse("x", "stop"))
    (tmp_path / "cc" / ("c" * 24 + ".json")).write_text("{trunc")
    assert cache.get("c" * 24) is None
