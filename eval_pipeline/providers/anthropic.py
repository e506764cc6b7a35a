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

import time
from typing import Any

from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.providers._api import (
    ApiOptions,
    ApiProviderBase,
    RequestFailure,
    classify_sdk_error,
    redact,
)

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


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

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The messages-API request body for ``request``."""
        sampling = request.sampling
        if sampling.n != 1:
            raise RequestFailure(
                "bad_request", f"sampling.n={sampling.n}: one completion per request only"
            )
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        kwargs: dict[str, Any] = {
            "model": self.spec.model_id,
            "messages": [m.as_dict() for m in request.messages if m.role != "system"],
            "max_tokens": sampling.max_tokens,
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

    async def agenerate(self, request: GenerationRequest) -> GenerationResponse:
        """Send one request; raises :class:`RequestFailure` on any failure."""
        body = self.payload(request)
        client = self._sdk_client()
        start = time.perf_counter()
        try:
            data = await client.post("/v1/messages", cast_to=object, body=body)
        except Exception as exc:
            raise classify_sdk_error(self._sdk, exc, self.secrets) from None
        latency = time.perf_counter() - start
        try:
            text = "".join(
                block.get("text", "") for block in data["content"] if block.get("type") == "text"
            )
            reason = data.get("stop_reason") or ""
            usage = data.get("usage") or {}
            input_tokens = int(usage.get("input_tokens") or 0)
            output_tokens = int(usage.get("output_tokens") or 0)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RequestFailure(
                "malformed", f"response is not a message ({type(exc).__name__}: {exc})"
            ) from None
        return GenerationResponse(
            completion=text,
            finish_reason=STOP_REASONS.get(reason, reason),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=latency,
            info={"served_model": redact(str(data.get("model") or ""), self.secrets)},
        )
