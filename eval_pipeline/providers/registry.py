"""Provider names, as written in ``models.yaml``, mapped to their classes.

The classes are imported on first use, so importing this package pulls in no SDK; the
heavy libraries (torch, the HTTP SDKs, vLLM) are imported when a provider is built or
first used.
"""

from __future__ import annotations

import importlib

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "fake": "eval_pipeline.providers.fake:FakeProvider",
    "fake-choices": "eval_pipeline.providers.fake:FakeChoicesProvider",
    "transformers": "eval_pipeline.providers.transformers:TransformersProvider",
    "vllm": "eval_pipeline.providers.vllm:VLLMProvider",
    "llama_cpp": "eval_pipeline.providers.llama_cpp:LlamaCppProvider",
    "openai": "eval_pipeline.providers.openai:OpenAIProvider",
    "openai_completions": "eval_pipeline.providers.openai:OpenAICompletionsProvider",
    "anthropic": "eval_pipeline.providers.anthropic:AnthropicProvider",
}


def provider_class(name: str) -> type[Provider]:
    """The class of the provider named ``name`` (its capabilities, without building it).

    Raises:
        KeyError: No provider has that name; the message lists the known ones.
    """
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {sorted(PROVIDERS)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_provider(spec: ModelSpec) -> Provider:
    """Build the provider for a catalog model."""
    try:
        cls = provider_class(spec.provider)
    except KeyError as exc:
        raise KeyError(f"model {spec.slug!r}: {exc.args[0]}") from None
    return cls(spec)
