"""Choice decoding on the vLLM provider without a GPU, against a stand-in ``vllm``.

The stand-in tokenizes one token per character and gives every prompt token a
log-probability that depends on the token and its position, so the expected sums can be
computed by hand.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.providers import vllm as vllm_provider
from eval_pipeline.providers.vllm import continuation_logprob

BOS = 1


def _token_logprob(token: int, position: int) -> float:
    return -((token % 7) + 1) / 10 - position / 1000


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Output:
    prompt_token_ids: list[int]
    prompt_logprobs: list


class _Tokenizer:
    bos_token_id = BOS
    eos_token_id = 2
    chat_template = None  # a base model

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([BOS] if add_special_tokens else []) + [ord(c) for c in text]}


@pytest.fixture
def stand_in_vllm(monkeypatch):
    calls: dict = {"generate": []}

    class LLM:
        def __init__(self, **kwargs):
            pass

        def get_tokenizer(self):
            return _Tokenizer()

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            calls["generate"].append((prompts, params))
            outputs = []
            for p in prompts:
                ids = p["prompt_token_ids"]
                # vLLM: None for the first token, then the prompt's own token and the
                # model's top-1 token at every position.
                logprobs = [None] + [
                    {t: _Logprob(_token_logprob(t, j)), 0: _Logprob(-0.01)}
                    for j, t in enumerate(ids)
                    if j > 0
                ]
                outputs.append(_Output(ids, logprobs))
            return outputs

    class VSamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM
    vllm.SamplingParams = VSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setattr(vllm_provider, "_LLMS", {})
    return calls


def _spec(**options) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "slug": "base-7b",
            "provider": "vllm",
            "model_id": "org/base-7b",
            "options": {"path": "/models/base-7b", **options},
        }
    )


def _mc(context: str, choices: tuple[str, ...], prompt_format: str = "completion"):
    return GenerationRequest(
        request_hash=context,
        sample_id=context,
        messages=(Message("user", context),),
        sampling=SamplingParams(max_tokens=1),
        choices=choices,
        prompt_format=prompt_format,
    )


def _expected(ids: list[int], start: int) -> float:
    return sum(_token_logprob(ids[j], j) for j in range(start, len(ids)))


def test_each_continuation_is_one_prompt_whose_prompt_logprobs_are_summed(stand_in_vllm):
    provider = create_provider(_spec())
    assert provider.capabilities.choices
    (response,) = provider.generate([_mc("Q: 2+2?\nA:", (" 4", " 22"))])
    ((prompts, params),) = stand_in_vllm["generate"]
    # lm-eval's default: the tokenizer's own special tokens, here a BOS.
    context = [BOS] + [ord(c) for c in "Q: 2+2?\nA:"]
    assert prompts == [
        {"prompt_token_ids": context + [ord(" "), ord("4")]},
        {"prompt_token_ids": context + [ord(" "), ord("2"), ord("2")]},
    ]
    assert params.kwargs["max_tokens"] == 1 and params.kwargs["prompt_logprobs"] == 1
    scores = response.choice_scores.logprobs()
    for prompt, choice in zip(prompts, (" 4", " 22"), strict=True):
        assert scores[choice] == pytest.approx(
            _expected(prompt["prompt_token_ids"], len(context)), abs=1e-6
        )
    assert response.choice_scores.token_counts() == {" 4": 2, " 22": 3}
    best = max(scores, key=scores.get)
    assert response.completion == best


def test_a_context_s_trailing_space_moves_into_the_continuation_as_lm_eval_does(stand_in_vllm):
    provider = create_provider(_spec(add_bos_token=False))
    (response,) = provider.generate([_mc("Answer: ", ("yes", "no"))])
    ((prompts, _),) = stand_in_vllm["generate"]
    context = [ord(c) for c in "Answer:"]
    assert prompts[0]["prompt_token_ids"] == context + [ord(" "), ord("y"), ord("e"), ord("s")]
    assert response.choice_scores.token_counts() == {"yes": 4, "no": 3}


def test_a_chat_request_on_a_model_without_a_chat_template_is_refused_naming_it(
    stand_in_vllm,
):
    provider = create_provider(_spec())
    (response,) = provider.generate([_mc("Q?", (" a", " b"), prompt_format="chat")])
    assert not response.ok
    assert "base-7b" in response.error and "chat template" in response.error


def test_the_continuation_sum_reads_floats_or_logprob_objects():
    ids = [5, 6, 7]
    logprobs = [None, {6: -0.5}, {7: _Logprob(-0.25), 3: _Logprob(-0.1)}]
    assert continuation_logprob(logprobs, ids, 1) == pytest.approx(-0.75)
    assert continuation_logprob(logprobs, ids, 2) == pytest.approx(-0.25)
