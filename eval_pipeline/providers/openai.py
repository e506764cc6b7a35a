"""OpenAI chat completions through the official ``openai`` SDK.

With ``base_url`` the same provider talks to any OpenAI-compatible server: a vLLM or
llama.cpp server, OpenRouter, a proxy. Options (``models.yaml`` ``options:``) are those of
:class:`~eval_pipeline.providers._api.ApiOptions` plus ``max_tokens_param``.

The provider is thin: one request per call, no retries (the SDK's own are switched off),
failures raised as :class:`RequestFailure`. Concurrency, rate limits, retries, the
circuit breaker, the budget and the cache live in ``eval_pipeline.engine``.

Requests go through the SDK client's generic ``post`` to ``/chat/completions`` with a
plain JSON body, and the answer is read from the JSON: the same client, authentication,
headers, timeouts and error classes as ``chat.completions.create``, without its per-call
parameter transformation and response model construction, which cost about 40% of the
client's CPU per request (measured with the local test server) and made the SDK, not the
server, the limit at high concurrency.
"""

from __future__ import annotations

from typing import Any, Literal

from eval_pipeline.core.types import GenerationRequest
from eval_pipeline.providers._api import ApiOptions, ApiProviderBase, answer_text
from eval_pipeline.providers.base import RequestFailure

FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class OpenAIOptions(ApiOptions):
    api_key_env: str | None = "OPENAI_API_KEY"
    # Newer OpenAI models take ``max_completion_tokens``; most compatible servers ``max_tokens``.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class OpenAIProvider(ApiProviderBase):
    """Chat completions against OpenAI or an OpenAI-compatible server."""

    name = "openai"
    options_model = OpenAIOptions
    sdk_module = "openai"
    client_class = "AsyncOpenAI"
    default_endpoint = "https://api.openai.com/v1"
    path = "/chat/completions"
    answer_kind = "a chat completion"

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions request body for ``request``."""
        sampling = request.sampling
        if sampling.n != 1:
            raise RequestFailure(
                "bad_request", f"sampling.n={sampling.n}: one completion per request only"
            )
        kwargs: dict[str, Any] = {
            "model": self.spec.model_id,
            "messages": [m.as_dict() for m in request.messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            self.options.max_tokens_param: sampling.max_tokens,
        }
        if sampling.stop:
            kwargs["stop"] = list(sampling.stop)
        return kwargs

    def parse(self, data: Any) -> tuple[str, str, int, int]:
        """The answer; no choice or ``content: null`` is a ``malformed`` failure."""
        usage = data.get("usage") or {}
        output_tokens = int(usage.get("completion_tokens") or 0)
        choices = data["choices"]
        choice = choices[0] if choices else {}
        raw_reason = choice.get("finish_reason") or ""
        reason = FINISH_REASONS.get(raw_reason, raw_reason)
        message = choice.get("message") or {}
        # A refusal comes as ``refusal`` text with null content: that is the answer.
        content = message.get("content")
        if content is None and message.get("refusal"):
            content, reason = str(message["refusal"]), "refusal"
        text = answer_text(
            content,
            reason,
            output_tokens,
            "message content is null" if choices else "the answer has no choices",
        )
        return text, reason, int(usage.get("prompt_tokens") or 0), output_tokens
