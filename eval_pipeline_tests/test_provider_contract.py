"""The provider contract's typed choice scoring: results, defaults, the cache, the columns."""

from __future__ import annotations

import asyncio
import json

import pytest

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
from eval_pipeline.providers import Provider, UnsupportedRequest, create_provider
from eval_pipeline.stages.generate import _choice_columns


def _request(
    choices: tuple[str, ...], request_type: str = "", target: str = ""
) -> GenerationRequest:
    return GenerationRequest(
        request_hash="h",
        sample_id="s1",
        messages=(Message("user", "The sky is"),),
        sampling=SamplingParams(),
        choices=choices,
        prompt_format="completion",
        request_type=request_type,
        extras={"target": target},
    )


def _fake(**options: object) -> Provider:
    spec = ModelSpec(slug="f", provider="fake-choices", model_id="f", options=options)
    return create_provider(spec)


def test_a_provider_without_choice_scoring_says_so_with_a_typed_error():
    provider = Provider(ModelSpec(slug="p", provider="fake", model_id="p"))
    with pytest.raises(UnsupportedRequest, match="does not score choices"):
        provider.loglikelihood([_request((" blue",))])
    with pytest.raises(UnsupportedRequest, match="rolling"):
        provider.loglikelihood_rolling([_request(("a text",))])
    with pytest.raises(NotImplementedError):
        asyncio.run(provider.aloglikelihood(_request((" blue",))))


def test_choice_scores_come_back_typed_in_request_order():
    provider = _fake(choice_logprobs={"s1": [-3.0, -0.5, -2.0]})
    [scores] = provider.loglikelihood([_request((" red", " blue", " green"))])
    assert [s.continuation for s in scores.scores] == [" red", " blue", " green"]
    assert [s.logprob for s in scores.scores] == [-3.0, -0.5, -2.0]
    assert scores.best() == 1
    assert scores.greedy() == [False, True, False]
    [response] = provider.generate([_request((" red", " blue", " green"))])
    assert response.completion == " blue" and response.choice_scores == scores
    assert "choice_logprobs" not in response.info


def test_rolling_scores_one_whole_text():
    provider = _fake(choice_logprobs={"s1": [-7.25]})
    [score] = provider.loglikelihood_rolling(
        [_request(("one two three",), "loglikelihood_rolling")]
    )
    assert isinstance(score, ContinuationScore)
    assert (score.continuation, score.logprob, score.tokens) == ("one two three", -7.25, 3)


def test_the_cache_keeps_choice_scores_and_reads_entries_written_before_them(tmp_path):
    cache = ResponseCache(tmp_path)
    scores = ChoiceScores(
        (ContinuationScore(" a", -1.5, 1, True), ContinuationScore(" b", -2.0, 2, False)), 4
    )
    cache.put("a" * 24, GenerationResponse(" a", "stop", 4, 1, choice_scores=scores))
    assert cache.get("a" * 24).choice_scores == scores
    # An entry of the earlier layout: the scores in ``info``, keyed by continuation.
    old = tmp_path / "bb" / ("b" * 24 + ".json")
    old.parent.mkdir(parents=True)
    old.write_text(
        json.dumps(
            {
                "completion": " a",
                "finish_reason": "stop",
                "input_tokens": 4,
                "info": {
                    "device": "cpu",
                    "choice_logprobs": {" a": -1.5, " b": -2.0},
                    "choice_tokens": {" a": 1, " b": 2},
                    "choice_greedy": {" a": True, " b": False},
                },
            }
        )
    )
    hit = cache.get("b" * 24)
    assert hit.choice_scores == scores and hit.info == {"device": "cpu"}


def test_the_generations_columns_come_from_the_typed_scores():
    request = _request((" a", " b"), "loglikelihood")
    typed = ChoiceScores(
        (ContinuationScore(" a", -1.0, 1, True), ContinuationScore(" b", -3.0, 2, False))
    )
    response = GenerationResponse(" a", "stop", choice_scores=typed)
    assert _choice_columns(request, response) == ([-1.0, -3.0], [1, 2], [True, False], None)
    # A loglikelihood request needs every greedy flag; scores for other choices are refused.
    no_flags = ChoiceScores((ContinuationScore(" a", -1.0, 1), ContinuationScore(" b", -3.0, 2)))
    assert (
        "greedy"
        in _choice_columns(request, GenerationResponse(" a", "stop", choice_scores=no_flags))[3]
    )
    other = ChoiceScores(
        (ContinuationScore(" b", -1.0, 1, True), ContinuationScore(" a", -3.0, 2, False))
    )
    assert (
        "do not match"
        in _choice_columns(request, GenerationResponse(" b", "stop", choice_scores=other))[3]
    )


def test_normalized_scores_divide_by_the_continuation_length():
    scores = ChoiceScores((ContinuationScore("ab", -4.0, 1), ContinuationScore("abcd", -6.0, 2)))
    assert scores.best() == 0
    normalized = scores.normalized(len)
    assert [s.logprob for s in normalized.scores] == [-2.0, -1.5]
    assert normalized.best() == 1
