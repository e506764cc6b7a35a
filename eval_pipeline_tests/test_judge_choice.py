"""Choice decoding and the local judge that uses it.

The transformers provider answers a request with ``choices`` by scoring every choice's
log-likelihood; the judge asks local judges for one of the scale's verdicts that way and
records the probability-weighted score. The slow tests run the shipped SmolLM2 model.
"""

from __future__ import annotations

import json
import math
import shutil

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import ModelSpec
from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
    Message,
    SamplingParams,
)
from eval_pipeline.engine import ResponseCache, request_hash, run_requests
from eval_pipeline.judge import expected_score, load_calibration_document, verdict_choices
from eval_pipeline.providers import create_provider
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize
from eval_pipeline_tests.projects import REPO, make_project

MESSAGES = (Message("user", "Is water wet? Answer yes or no."),)


def _shipped_model() -> dict:
    return yaml.safe_load((REPO / "models.yaml").read_text())["models"][0]


# --------------------------------------------------------------------------- fast units


def test_choices_join_the_cache_key_only_when_given():
    identity, sampling = {"slug": "m"}, SamplingParams()
    plain = request_hash(identity, sampling, MESSAGES)
    # Requests without choices keep the key they had before choice decoding existed.
    assert plain == content_hash(
        {
            "model": identity,
            "sampling": sampling.model_dump(mode="json"),
            "messages": [m.as_dict() for m in MESSAGES],
        },
        24,
    )
    with_choices = request_hash(identity, sampling, MESSAGES, ("yes", "no"))
    assert with_choices != plain
    assert with_choices != request_hash(identity, sampling, MESSAGES, ("no", "yes"))


def test_expected_score_weights_each_verdict_by_its_probability():
    response = GenerationResponse(
        completion='{"score": 1}',
        finish_reason="stop",
        choice_scores=ChoiceScores(
            (
                ContinuationScore('{"score": 1}', math.log(0.5), 3),
                ContinuationScore('{"score": 2}', math.log(0.25), 3),
                ContinuationScore('{"score": 5}', math.log(0.25), 3),
                ContinuationScore("not a verdict", 0.0, 3),  # ignored: does not parse
            )
        ),
    )
    # 0.5 * 1 + 0.25 * 2 + 0.25 * 5
    assert expected_score(response) == pytest.approx(2.25)
    assert expected_score(GenerationResponse("x", "stop")) is None
    assert expected_score(None) is None


def test_only_providers_with_choice_decoding_get_verdict_choices():
    assert verdict_choices("transformers") == tuple(json.dumps({"score": s}) for s in range(1, 6))
    assert verdict_choices("openai") == () and verdict_choices("fake") == ()


def test_a_provider_without_choice_decoding_refuses_choice_requests(tmp_path):
    spec = ModelSpec.model_validate({"slug": "f", "provider": "fake", "model_id": "fake/x"})
    request = GenerationRequest(
        request_hash="h1",
        sample_id="s",
        messages=MESSAGES,
        sampling=SamplingParams(),
        choices=("yes", "no"),
    )
    with pytest.raises(EvalPipelineError, match="does not implement choice decoding"):
        run_requests(create_provider(spec), spec, [request], ResponseCache(tmp_path))


# --------------------------------------------------------------------------- the real model


def _full_pass_logprob(provider, request: GenerationRequest, choice: str) -> float:
    """A choice's log-likelihood from one forward pass over prompt + choice, no cache."""
    import torch

    lm = provider.loaded
    prompt = lm.tokenizer(provider._prompt_text(request), add_special_tokens=False)["input_ids"]
    ids = lm.tokenizer(choice, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([prompt + ids])).logits[0]
    logprobs = logits.float().log_softmax(-1)
    return sum(float(logprobs[len(prompt) - 1 + j, t]) for j, t in enumerate(ids))


@pytest.mark.slow
def test_choice_decoding_scores_each_choice_like_a_full_forward_pass():
    spec = ModelSpec.model_validate(_shipped_model())
    provider = create_provider(spec)
    # Choices of different lengths sharing a prefix: the shared part runs once, the rest
    # is scored on copies of the cache; the sums must match scoring each one separately.
    choices = ("Yes", "No", "Yes, it is", "No, water is not wet")
    request = GenerationRequest(
        request_hash="c1",
        sample_id="s",
        messages=MESSAGES,
        sampling=SamplingParams(),
        choices=choices,
    )
    (response,) = provider.generate([request])
    assert response.ok and response.completion in choices
    got = response.choice_scores.logprobs()
    expected = {c: _full_pass_logprob(provider, request, c) for c in choices}
    for choice in choices:
        assert got[choice] == pytest.approx(expected[choice], abs=1e-4)
    assert response.completion == max(expected, key=expected.get)
    # Deterministic: the same request gives the same answer and scores.
    (again,) = provider.generate([request])
    assert again.choice_scores.logprobs() == got


@pytest.mark.slow
def test_completion_format_choices_on_the_real_model_equal_a_full_pass_on_lm_eval_tokens():
    import torch

    spec = ModelSpec.model_validate(_shipped_model())
    provider = create_provider(spec)
    tokenizer = provider.loaded.tokenizer
    contexts = [
        "Q: Is the following sentence plausible? Joao Moutinho caught the screen pass.\nA:",
        "Q: If you follow these instructions, do you return to the starting point? "
        "Take 1 step. Take 2 steps. Turn around. Take 3 steps.\nA:",
        "Q: How would a typical person answer? Did the man cause the fire?\nA: ",
    ]
    choice_sets = [(" yes", " no"), (" True", " False"), ("Yes", "No", "Maybe not")]
    requests = [
        GenerationRequest(
            request_hash=f"m{i}",
            sample_id=f"m{i}",
            messages=(Message("user", context),),
            sampling=SamplingParams(max_tokens=1),
            choices=choices,
            prompt_format="completion",
        )
        for i, (context, choices) in enumerate(zip(contexts, choice_sets, strict=True))
    ]
    template = tokenizer.chat_template
    tokenizer.chat_template = None  # a base model: completion format needs no template
    try:
        responses = provider.generate(requests)
        (refused,) = provider.generate([GenerationRequest("c", "c", MESSAGES, SamplingParams())])
    finally:
        tokenizer.chat_template = template
    assert not refused.ok and spec.slug in refused.error
    for request, response in zip(requests, responses, strict=True):
        assert response.ok, response.error
        context = request.messages[0].content
        for choice in request.choices:
            # lm-eval's _encode_pair: trailing whitespace moves into the continuation.
            stripped = context.rstrip()
            continuation = context[len(stripped) :] + choice
            whole = tokenizer(stripped + continuation)["input_ids"]
            ctx = tokenizer(stripped)["input_ids"]
            cont = whole[len(ctx) :]
            with torch.inference_mode():
                logits = provider.loaded.model(input_ids=torch.tensor([ctx + cont])).logits[0]
            logprobs = logits.float().log_softmax(-1)
            expected = sum(float(logprobs[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
            assert response.choice_scores.logprobs()[choice] == pytest.approx(expected, abs=1e-4)
            assert response.choice_scores.token_counts()[choice] == len(cont)


@pytest.mark.slow
def test_judge_requests_scored_in_one_batch_equal_a_full_pass_per_choice():
    spec = ModelSpec.model_validate(_shipped_model())
    provider = create_provider(spec)
    # Judge prompts share the system message and rubric, then differ in length; the
    # verdicts share '{"score": ' and differ after it. One call scores them all.
    rubric = "Rate the answer from 1 to 5. Reply with a JSON object.\n"
    answers = ("Paris.", "It is Lyon, I think, or maybe Paris.", "", "The capital is Paris")
    requests = [
        GenerationRequest(
            request_hash=f"j{i}",
            sample_id=f"s{i}",
            messages=(
                Message("system", "You are a careful grader."),
                Message("user", f"{rubric}Question: capital of France?\nAnswer: {answer}"),
            ),
            sampling=SamplingParams(),
            choices=verdict_choices("transformers"),
        )
        for i, answer in enumerate(answers)
    ]
    together = provider.generate(requests)
    for request, response in zip(requests, together, strict=True):
        got = response.choice_scores.logprobs()
        for choice in request.choices:
            expected = _full_pass_logprob(provider, request, choice)
            assert got[choice] == pytest.approx(expected, abs=1e-4)
        (alone,) = provider.generate([request])
        assert alone.completion == response.completion
        assert alone.choice_scores.logprobs() == pytest.approx(got, abs=1e-4)
    facts = provider.telemetry()
    assert facts["choice_requests"] >= len(requests)


@pytest.mark.slow
def test_the_shipped_judge_gives_readable_verdicts_and_is_calibrated(tmp_path):
    model = _shipped_model()
    project = make_project(tmp_path / "p", models={"models": [model]}, datasets=("open-qa",))
    # 24 of the 42 helpfulness labels keep the test short; 20 are needed for a fit.
    labels_dir = project / "datasets" / "judge-labels"
    shutil.copytree(REPO / "datasets" / "judge-labels", labels_dir)
    rows = [
        line
        for line in (labels_dir / "labels.jsonl").read_text().splitlines()
        if json.loads(line)["rubric"] == "helpfulness"
    ][:24]
    (labels_dir / "labels.jsonl").write_text("\n".join(rows) + "\n")
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "open-qa|smollm2-135m", sample_limit=3)
    assert result.success
    store = Store(store_root)
    judgements = store.read("judgements", dataset="open-qa", model="smollm2-135m")
    assert judgements.height == 3
    assert judgements["status"].to_list() == ["ok"] * 3
    assert set(judgements["verdict"]) <= set(verdict_choices("transformers"))
    assert judgements["score"].is_between(1.0, 5.0).all()
    scores = store.read("scores", dataset="open-qa", model="smollm2-135m")
    raw = scores.filter(pl.col("metric") == "helpfulness")["value"]
    assert raw.null_count() == 0
    calibration = load_calibration_document(store, "smollm2-135m", "helpfulness")
    assert calibration["status"] == "fitted"
    assert calibration["parsed"] == 24
    assert calibration["verdict_statuses"] == {"ok": 24}
    calibrated = scores.filter(pl.col("metric") == "helpfulness:calibrated")["value"]
    assert calibrated.null_count() == 0 and calibrated.is_between(1.0, 5.0).all()
    meta = materialization_metadata(result, "generations")
    assert meta["model_calls"] == 3
