"""Provider names, as written in ``models.yaml``, mapped to factories."""

from __future__ import annotations

from collections.abc import Callable

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.providers.base import Provider


def _fake(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.fake import FakeProvider

    return FakeProvider(spec)


def _transformers(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.transformers import TransformersProvider

    return TransformersProvider(spec)


def _openai(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.openai import OpenAIProvider

    return OpenAIProvider(spec)


def _anthropic(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.anthropic import AnthropicProvider

    return AnthropicProvider(spec)


def _llama_cpp(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.llama_cpp import LlamaCppProvider

    return LlamaCppProvider(spec)


def _vllm(spec: ModelSpec) -> Provider:
    from eval_pipeline.providers.vllm import VLLMProvider

    return VLLMProvider(spec)


PROVIDERS: dict[str, Callable[[ModelSpec], Provider]] = {
    "fake": _fake,
    "transformers": _transformers,
    "vllm": _vllm,
    "llama_cpp": _llama_cpp,
    "openai": _openai,
    "anthropic": _anthropic,
}


# Providers that implement choice decoding (``GenerationRequest.choices``): the completion
# is the listed string the model scores most likely, so a small local judge always
# returns a well-formed verdict. API models are asked for free-form JSON instead.
CHOICE_DECODING = frozenset({"transformers"})


def supports_choices(provider: str) -> bool:
    """Whether the provider named ``provider`` implements choice decoding."""
    return provider in CHOICE_DECODING


def create_provider(spec: ModelSpec) -> Provider:
    """Build the provider for a catalog model."""
    try:
        factory = PROVIDERS[spec.provider]
    except KeyError:
        raise KeyError(
            f"model {spec.slug!r}: unknown provider {spec.provider!r}; known: {sorted(PROVIDERS)}"
        ) from None
    return factory(spec)
