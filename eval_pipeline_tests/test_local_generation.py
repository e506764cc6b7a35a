"""Local generation with the real default model (SmolLM2-135M-Instruct on CPU).

One model load serves every test here (the provider keeps loaded models per process,
and the tests share one provider): continuous batching against a plain ``generate``
loop, stop sequences inside generation, and the de-quantized copy of the GGUF file.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.providers import transformers as hf
from eval_pipeline_tests.bench.local_generation import plain_generate
from eval_pipeline_tests.projects import REPO

pytestmark = pytest.mark.slow

QUESTIONS = (
    "What is the capital of France?",
    "What is 7 + 5? Reply with just the number.",
    "Name a primary colour.",
    "Write one sentence about the sea.",
    "What is the chemical symbol for gold?",
    "List three fruits.",
    "What is 12 times 3? Reply with just the number.",
    "Say hello in Spanish.",
    "Describe a cat in a few words.",
    "What planet do we live on?",
)


def _spec(**options) -> ModelSpec:
    model = yaml.safe_load((REPO / "models.yaml").read_text())["models"][0]
    model["options"] = {**model["options"], **options}
    return ModelSpec.model_validate(model)


def _request(i: int, text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(
        request_hash=f"h{i}",
        sample_id=f"s{i}",
        messages=(Message("user", text),),
        sampling=SamplingParams(**{"max_tokens": 24, **sampling}),
    )


@pytest.fixture(scope="module")
def provider():
    # Three sequences at a time: ten requests need refills, and every row joins a cache
    # that already holds others.
    return create_provider(_spec(batch_size=3))


def test_continuous_batching_answers_like_a_plain_generate_loop_in_request_order(provider):
    requests = [_request(i, q) for i, q in enumerate(QUESTIONS)]
    got = provider.generate(requests)
    expected = plain_generate(provider, requests)
    assert [r.completion for r in got] == [text for text, _, _ in expected]
    assert [r.finish_reason for r in got] == [
        "stop" if stopped else "length" for _, stopped, _ in expected
    ]
    assert [r.output_tokens for r in got] == [n for _, _, n in expected]
    assert {"stop", "length"} <= {r.finish_reason for r in got}
    facts = provider.telemetry()
    assert facts["sequences"] == len(requests)
    assert facts["output_tokens"] == sum(r.output_tokens for r in got)
    assert facts["tokens_per_s"] > 0 and facts["batches"] > 0
    assert 0 <= facts["padding_share"] < 1
    assert facts["peak_rss_mb"] > 100 and facts["load_s"] > 0


def test_a_stop_sequence_ends_the_sequence_where_the_model_writes_it(provider):
    free = _request(0, "List the numbers from 1 to 30, separated by commas.", max_tokens=48)
    (whole,) = provider.generate([free])
    assert whole.finish_reason == "length" and whole.output_tokens == 48
    # Stop at the fifth comma: the same text up to there, and generation ends there.
    cut = [i for i, ch in enumerate(whole.completion) if ch == ","][4]
    stop = whole.completion[cut : cut + 3]
    stopped_request = dataclasses.replace(
        free, request_hash="h-stop", sampling=free.sampling.merged({"stop": (stop,)})
    )
    (stopped,) = provider.generate([stopped_request])
    assert stopped.finish_reason == "stop"
    assert stopped.completion == hf.apply_stop(whole.completion, [stop])[0]
    assert stopped.output_tokens < whole.output_tokens / 2
    # Mixed in one call with other requests and other sampling settings, it ends the same.
    together = provider.generate([_request(1, QUESTIONS[0]), stopped_request, free])
    assert together[1].completion == stopped.completion
    assert together[2].completion == whole.completion


def test_the_de_quantized_copy_on_disk_loads_the_same_model(provider, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("EVAL_PIPELINE_CACHE", str(tmp_path))
    lm = provider.loaded
    options = hf.TransformersOptions.model_validate(provider.spec.options)
    source, gguf_file = hf.resolve_source(options)
    target = hf.gguf_cache_dir(hf.Path(source) / gguf_file, None)
    hf._write_gguf_cache(lm.model, lm.tokenizer, target)
    # Another revision label is another process-wide model: this one loads from disk.
    copy = create_provider(_spec(batch_size=3).model_copy(update={"revision": "copy"}))
    assert copy.loaded.source == "gguf-cache"
    ours, theirs = lm.model.state_dict(), copy.loaded.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    requests = [_request(i, q) for i, q in enumerate(QUESTIONS[:3])]
    assert [r.completion for r in copy.generate(requests)] == [
        r.completion for r in provider.generate(requests)
    ]
