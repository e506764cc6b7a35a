"""The request hash and the response cache."""

from __future__ import annotations

from eval_pipeline.core.specs import ModelSpec
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


def _local_spec(**changes) -> ModelSpec:
    fields = {
        "slug": "local",
        "provider": "transformers",
        "model_id": "org/model",
        "options": {"gguf_package": "pkg", "gguf_file": "m.Q4_1.gguf", "batch_size": 8},
        **changes,
    }
    return ModelSpec.model_validate(fields)


def _key(spec: ModelSpec) -> str:
    return request_hash(spec.identity(), SamplingParams(), (Message("user", "hi"),))


def test_every_load_option_that_changes_answers_changes_the_cache_key():
    base = _local_spec()
    for option, value in [
        ("gguf_file", "m.Q8_0.gguf"),
        ("dtype", "bfloat16"),
        ("load_in_4bit", True),
        ("path", "/models/other"),
    ]:
        changed = _local_spec(options={**base.options, option: value})
        assert _key(changed) != _key(base), option
    # Speed settings reuse the cache.
    for option, value in [("batch_size", 32), ("threads", 2), ("device", "cuda")]:
        assert _key(_local_spec(options={**base.options, option: value})) == _key(base), option


def test_an_adapter_edited_in_place_gets_new_cache_keys(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(bytes(64))
    spec = _local_spec(adapter=str(adapter))
    before = _key(spec)
    assert _key(spec) == before
    (adapter / "adapter_model.safetensors").write_bytes(bytes([1]) * 64)
    assert _key(spec) != before
    assert spec.identity()["adapter_sha256"] != ""


def test_api_model_keys_do_not_depend_on_client_options():
    spec = ModelSpec.model_validate(
        {"slug": "api", "provider": "openai", "model_id": "gpt", "options": {"base_url": "x"}}
    )
    assert spec.identity() == {
        "provider": "openai",
        "model_id": "gpt",
        "revision": None,
        "adapter": None,
    }
