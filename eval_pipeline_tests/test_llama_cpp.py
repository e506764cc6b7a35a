"""The llama_cpp provider: refused with install advice without its extra, else the real model.

The real-model tests need the optional ``llama`` extra (``make llama``) and skip without it.
"""

from __future__ import annotations

import pytest
import yaml

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider, llama_cpp
from eval_pipeline_tests.projects import REPO

needs_llama = pytest.mark.skipif(
    not llama_cpp.llama_cpp_available(),
    reason=f"llama-cpp-python is not installed: {llama_cpp.INSTALL_ADVICE}",
)


def _spec(**options) -> ModelSpec:
    shipped = yaml.safe_load((REPO / "models.yaml").read_text())["models"][0]["options"]
    return ModelSpec(
        slug="smollm2-135m-llama",
        provider="llama_cpp",
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        revision="gguf-q4_1",
        options={
            "gguf_package": shipped["gguf_package"],
            "gguf_file": shipped["gguf_file"],
            **options,
        },
    )


def _request(i: int, text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(
        request_hash=f"h{i}",
        sample_id=f"s{i}",
        messages=(Message("user", text),),
        sampling=SamplingParams(**{"max_tokens": 32, **sampling}),
    )


def test_a_llama_cpp_model_without_the_extra_is_refused_with_install_advice(monkeypatch):
    monkeypatch.setattr(llama_cpp, "llama_cpp_available", lambda: False)
    with pytest.raises(EvalPipelineError, match=r"smollm2-135m-llama.*make llama"):
        create_provider(_spec())


def test_the_backend_is_part_of_the_model_identity():
    transformers = _spec().model_copy(update={"provider": "transformers"})
    assert _spec().identity() != transformers.identity()


@pytest.mark.slow
@needs_llama
def test_llama_cpp_generates_greedily_and_stops_inside_generation():
    provider = create_provider(_spec(threads=1))
    count = "List the numbers from 1 to 30, separated by commas."
    first = provider.generate([_request(0, "What is the capital of France?"), _request(1, count)])
    assert all(r.ok for r in first)
    assert first[1].finish_reason == "length" and first[1].output_tokens == 32
    again = provider.generate([_request(0, "What is the capital of France?")])
    assert again[0].completion == first[0].completion  # greedy: the same answer again
    (stopped,) = provider.generate([_request(2, count, stop=(", 6",))])
    assert stopped.finish_reason == "stop"
    assert ", 6" not in stopped.completion and stopped.output_tokens < 32
    facts = provider.telemetry()
    assert facts["load_s"] < 10 and facts["tokens_per_s"] > 0
