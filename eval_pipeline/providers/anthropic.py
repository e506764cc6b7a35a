"""Anthropic messages through the official ``anthropic`` SDK.

Options (``models.yaml`` ``options:``) are those of
:class:`~eval_pipeline.providers._api.ApiOptions`; ``base_url`` points the SDK at another
server speaking the messages API (a proxy, or the test server). System messages of the
rendered prompt become the ``system`` parameter. As in the ``openai`` provider, requests
go through the SDK client's generic ``post`` (same client, authentication, headers and
error classes as ``messages.create``, less its per-call CPU).

The SDK's typed ``messages.create`` takes neither a seed nor (since 2.x) ``temperature`` and
``top_p``; servers that still accept them get them in the request body when
``send_sampling: true``. Either way every sampling parameter is part of the request hash,
so changing one re-runs the requests.
"""

from __future__ import annotations

# Any: request and answer bodies as JSON (any JSON type).
from typing import Any

from eval_pipeline.core.types import GenerationRequest
from eval_pipeline.providers._answers import Answer, Json, anthropic_answer
from eval_pipeline.providers._api import ApiOptions, ApiProviderBase


class AnthropicOptions(ApiOptions):
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    send_sampling: bool = False


class AnthropicProvider(ApiProviderBase):
    """Messages API requests against Anthropic or a compatible server."""

    name = "anthropic"
    options_model = AnthropicOptions
    sdk_module = "anthropic"
    client_class = "AsyncAnthropic"
    default_endpoint = "https://api.anthropic.com"
    path = "/v1/messages"
    answer_kind = "a message"

    def batch_api(self) -> Any:
        """Message Batches on this provider's endpoint (see :mod:`eval_pipeline.providers.batch`)."""
        from eval_pipeline.providers.batch.anthropic import AnthropicBatchApi

        return AnthropicBatchApi(self)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The messages-API fields for ``request``; system messages become ``system``."""
        sampling = request.sampling
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        kwargs: dict[str, Any] = {
            "messages": [m.as_dict() for m in request.messages if m.role != "system"],
        }
        if system:
            kwargs["system"] = system
        if self.options.send_sampling:
            kwargs["temperature"] = sampling.temperature
            # Some models refuse temperature and top_p together; send top_p only when it matters.
            if sampling.top_p < 1.0:
                kwargs["top_p"] = sampling.top_p
        if sampling.stop:
            kwargs["stop_sequences"] = list(sampling.stop)
        return kwargs

    def parse(self, data: Json) -> Answer:
        """The answer; ``content: []`` or no text block is a ``malformed`` failure."""
        return anthropic_answer(data)
