"""Log-likelihoods from an OpenAI-compatible ``/v1/completions`` endpoint (echo + logprobs).

Through the real ``openai`` SDK against the local server, whose completions endpoint
gives every prompt token a deterministic log-probability; the expected sums are computed
here from the same token rule.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import (
    ServerConfig,
    api_model,
    completion_tokens,
    make_api_project,
    materialize_api,
    token_logprob,
)
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture

api_server = api_server_fixture()
_api_key = api_key_fixture()

FAST = {
    "api_key_env": KEY_ENV,
    "request_timeout_s": 5.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.3,
}


def expected_loglikelihood(context: str, continuation: str) -> tuple[float, int]:
    """The server's log-likelihood of ``continuation`` after ``context``, by hand."""
    stripped = context.rstrip()
    continuation = context[len(stripped) :] + continuation
    tokens = completion_tokens(stripped + continuation)
    total, count, at = 0.0, 0, 0
    for j, token in enumerate(tokens):
        if at + len(token) > len(stripped):
            total += token_logprob(tokens[j - 1], token)
            count += 1
        at += len(token)
    return total, count


def _provider(base_url: str):
    return create_provider(
        ModelSpec.model_validate(
            {
                "slug": "base-model",
                "provider": "openai_completions",
                "model_id": "base-test-model",
                "prompt_format": "completion",
                "options": {"base_url": base_url, **FAST},
            }
        )
    )


def _request(context: str, choices: tuple[str, ...], prompt_format: str = "completion"):
    return GenerationRequest(
        request_hash=context,
        sample_id="s-1",
        messages=(Message("user", context),),
        sampling=SamplingParams(max_tokens=8),
        choices=choices,
        prompt_format=prompt_format,
    )


def test_each_continuation_is_scored_from_the_echoed_prompt_log_probabilities(api_server):
    api_server.configure(ServerConfig())
    provider = _provider(api_server.openai_base_url)
    assert provider.capabilities.choices
    context = "Q: What is the capital of France?\nA:"
    choices = (" Paris", " Lyon is big", " Nice")
    (response,) = provider.generate([_request(context, choices)])
    assert response.ok, response.error
    for choice in choices:
        total, count = expected_loglikelihood(context, choice)
        assert response.choice_scores.logprobs()[choice] == pytest.approx(total, abs=1e-6)
        assert response.choice_scores.token_counts()[choice] == count
    scores = response.choice_scores.logprobs()
    assert response.completion == max(choices, key=lambda c: scores[c])
    assert api_server.stats()["requests"] == len(choices)


def test_a_context_s_trailing_space_is_scored_with_the_continuation(api_server):
    api_server.configure(ServerConfig())
    (response,) = _provider(api_server.openai_base_url).generate(
        [_request("Answer: ", ("yes", "no"))]
    )
    total, count = expected_loglikelihood("Answer: ", "yes")
    assert (count, response.choice_scores.token_counts()["yes"]) == (1, 1)
    assert response.choice_scores.logprobs()["yes"] == pytest.approx(total, abs=1e-6)


def test_a_chat_format_request_is_refused_naming_the_model(api_server):
    api_server.configure(ServerConfig())
    (response,) = _provider(api_server.openai_base_url).generate(
        [_request("Q?", (" a", " b"), prompt_format="chat")]
    )
    assert not response.ok
    assert "base-model" in response.error and "completion" in response.error
    assert api_server.stats()["requests"] == 0


MC_ROWS = [
    {"id": f"mc-{i}", "question": f"Which word is number {i}?", "options": opts, "answer": ans}
    for i, (opts, ans) in enumerate(
        [
            (["alpha", "beta", "gamma"], 0),
            (["red", "green"], 1),
            (["one", "two", "three", "four"], 2),
            (["yes", "no"], 0),
            (["north", "south", "east"], 2),
        ]
    )
]


def test_a_multiple_choice_dataset_runs_end_to_end_on_the_completions_endpoint(
    api_server, tmp_path
):
    api_server.configure(ServerConfig())
    model = api_model(
        "base-model", "openai_completions", api_server.openai_base_url, concurrency=4, **FAST
    )
    model["prompt_format"] = "completion"
    project = make_api_project(tmp_path / "project", [model], 1)
    folder = project / "datasets" / "mc"
    folder.mkdir()
    spec = {
        "name": "mc",
        "description": "Tiny multiple-choice set for the completions endpoint.",
        "source": "hand-written",
        "license": "CC0-1.0",
        "data": "data.jsonl",
        "fields": ["question"],
        "target_field": "answer",
        "task": "multiple_choice",
        "choices_field": "options",
        "prompt": "mc",
        "scorers": [{"name": "acc"}, {"name": "acc_norm"}],
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_ROWS))
    (project / "prompts" / "mc.jinja").write_text("Q: {{ question }}\nA:")
    result = materialize_api(project, tmp_path / "store", "mc|base-model")
    assert result.success

    store = Store(tmp_path / "store")
    gens = store.read("generations", dataset="mc", model="base-model").sort("sample_id")
    assert gens["error"].null_count() == gens.height == len(MC_ROWS)
    for row, source in zip(gens.iter_rows(named=True), MC_ROWS, strict=True):
        context = f"Q: {source['question']}\nA:"
        expected = [expected_loglikelihood(context, " " + o) for o in source["options"]]
        assert row["choice_logprobs"] == pytest.approx([e[0] for e in expected], abs=1e-6)
        assert row["choice_tokens"] == [e[1] for e in expected]
    scores = store.read("scores", dataset="mc", model="base-model")
    acc = scores.filter(pl.col("metric") == "acc").sort("sample_id")
    picked = [
        max(
            range(len(r["options"])),
            key=lambda i, r=r: (
                expected_loglikelihood(f"Q: {r['question']}\nA:", " " + r["options"][i])[0],
                -i,
            ),
        )
        for r in MC_ROWS
    ]
    assert acc["value"].to_list() == [
        float(p == r["answer"]) for p, r in zip(picked, MC_ROWS, strict=True)
    ]
