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

import asyncio
import time

# Any: request and answer bodies as JSON (any JSON type).
from typing import Any, Literal

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.types import (
    ChoiceScores,
    GenerationRequest,
    GenerationResponse,
    SamplingParams,
)
from eval_pipeline.providers._answers import (
    Answer,
    Json,
    openai_chat_answer,
    openai_text_answer,
    prompt_logprobs,
)
from eval_pipeline.providers._api import (
    ApiOptions,
    ApiProviderBase,
    classify_sdk_error,
)
from eval_pipeline.providers._choices import (
    choice_response,
    choice_scores,
    completion_context,
    split_pair,
)
from eval_pipeline.providers.base import Capabilities, RequestFailure


class OpenAIOptions(ApiOptions):
    api_key_env: str | None = "OPENAI_API_KEY"
    # Newer OpenAI models take ``max_completion_tokens``; most compatible servers ``max_tokens``.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


def _sampling_fields(sampling: SamplingParams) -> dict[str, Any]:
    """The sampling parameters both OpenAI endpoints take."""
    fields: dict[str, Any] = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
    }
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    return fields


class OpenAIProvider(ApiProviderBase):
    """Chat completions against OpenAI or an OpenAI-compatible server."""

    name = "openai"
    options_model = OpenAIOptions
    sdk_module = "openai"
    client_class = "AsyncOpenAI"
    default_endpoint = "https://api.openai.com/v1"
    path = "/chat/completions"
    answer_kind = "a chat completion"

    def batch_api(self) -> Any:
        """OpenAI Batch on this provider's endpoint (see :mod:`eval_pipeline.providers.batch`)."""
        from eval_pipeline.providers.batch.openai import OpenAIBatchApi

        return OpenAIBatchApi(self)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions fields for ``request``."""
        return {
            "messages": [m.as_dict() for m in request.messages],
            **_sampling_fields(request.sampling),
        }

    def max_tokens_field(self) -> str:
        return str(self.options.max_tokens_param)

    def parse(self, data: Json) -> Answer:
        """The answer; no choice, ``content: null`` or a tool call is a ``malformed`` failure."""
        return openai_chat_answer(data)


class OpenAICompletionsProvider(OpenAIProvider):
    """Log-likelihoods from an OpenAI-compatible ``/v1/completions`` endpoint.

    For base models served by vLLM's or llama.cpp's server: each continuation of a choice
    request is posted as ``context + continuation`` with ``echo: true, logprobs: 1,
    max_tokens: 0``; the server returns every prompt token's log-probability and text
    offset, and the continuation's tokens (those ending after the context, whose
    trailing whitespace is moved into the continuation as lm-evaluation-harness does)
    are summed. A request without choices is a plain text completion of its context.
    Only ``completion``-format requests are taken: the endpoint applies no chat template.
    """

    name = "openai_completions"
    capabilities = Capabilities(async_generate=True, choices=True)
    path = "/completions"
    answer_kind = "a text completion with prompt log-probabilities"

    def _context(self, request: GenerationRequest) -> str:
        if request.prompt_format != "completion":
            raise RequestFailure(
                "bad_request",
                f"model {self.spec.slug!r}: provider 'openai_completions' takes only "
                "completion-format prompts (the endpoint applies no chat template); set "
                "prompt_format: completion on the model or the dataset",
            )
        try:
            return completion_context(request)
        except EvalPipelineError as exc:
            raise RequestFailure("bad_request", str(exc)) from None

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The completions fields for a request without choices."""
        return {"prompt": self._context(request), **_sampling_fields(request.sampling)}

    def max_tokens_field(self) -> str:
        return "max_tokens"

    def parse(self, data: Json) -> Answer:
        """A text completion's answer; no choice or no text is a ``malformed`` failure."""
        return openai_text_answer(data)

    async def agenerate(self, request: GenerationRequest) -> GenerationResponse:
        """A text completion, or for a choice request every continuation's log-likelihood."""
        if not request.choices:
            return await super().agenerate(request)
        start = time.perf_counter()
        scores = await self.aloglikelihood(request)
        return choice_response(request, scores, time.perf_counter() - start)

    async def aloglikelihood(self, request: GenerationRequest) -> ChoiceScores:
        """Every choice's score (see :meth:`Provider.loglikelihood`); ``greedy`` is None.

        One echo request per continuation, posted together.
        """
        context = self._context(request)
        scored = await asyncio.gather(*(self._loglikelihood(context, c) for c in request.choices))
        return choice_scores(request, [s[0] for s in scored], [s[1] for s in scored], scored[0][2])

    async def _loglikelihood(self, context: str, continuation: str) -> tuple[float, int, int]:
        """(summed log-prob, token count) of ``continuation`` after ``context``.

        The third value is the context's token count.
        """
        context, continuation = split_pair(context, continuation)
        body = {
            "model": self.spec.model_id,
            "prompt": context + continuation,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 0,
            "temperature": 0.0,
        }
        client = self._sdk_client()
        try:
            data = await client.post(self.path, cast_to=object, body=body)
        except Exception as exc:
            raise classify_sdk_error(self._sdk, exc, self.secrets) from None
        return prompt_logprobs(data, context)
