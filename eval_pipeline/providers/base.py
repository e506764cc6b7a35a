"""The provider contract: one base class, declared capabilities, and the failure taxonomy.

A provider turns requests into responses and nothing more; caching, retries, rate limits,
budgets and progress live in :mod:`eval_pipeline.engine` above it. The engine learns what a
provider can do from the object itself (:attr:`Provider.capabilities`) and asks the
provider how to treat a failure (:meth:`Provider.should_retry`,
:meth:`Provider.is_rate_limit`, :meth:`Provider.is_fatal`); it keeps no table of provider
names and probes nothing with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Any: a provider's own loaded model object, and telemetry as JSON.
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
    Missing,
)

if TYPE_CHECKING:
    from eval_pipeline.providers.batch import BatchApi

FailureKind = Literal[
    "rate_limited",  # 429
    "server",  # 5xx (and 408/409, which the APIs document as transient)
    "timeout",  # the request deadline passed
    "connection",  # refused, reset or dropped connections
    "malformed",  # a 2xx whose body is not the JSON the API documents
    "auth",  # 401 / 403: every further request would fail the same way
    "bad_request",  # 400 / 404 / 413 / 422 ...: this request is wrong; others may be fine
    "other",
]

RETRYABLE: frozenset[str] = frozenset(
    {"rate_limited", "server", "timeout", "connection", "malformed"}
)
# Failures that say the provider as a whole is unusable: the partition stops at once.
FATAL: frozenset[str] = frozenset({"auth"})


class UnsupportedRequest(NotImplementedError):
    """The provider does not implement this kind of request (its capabilities say so)."""


class RequestFailure(Exception):
    """One failed request, classified for the engine; the message holds no secrets."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        limit_headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        # The server's rate-limit headers (``x-ratelimit-*``), for the engine's pacing.
        self.limit_headers = limit_headers

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL

    def __str__(self) -> str:
        prefix = f"HTTP {self.status}" if self.status else self.kind
        return f"{prefix}: {self.message}"


@dataclass(frozen=True)
class Capabilities:
    """What a provider implements; the engine and the catalog read these, never names.

    Attributes:
        batch_generate: :meth:`Provider.generate` answers a list of requests at once (local
            models batch them on the device); the engine hands over ``batch_size`` at a time.
        async_generate: :meth:`Provider.agenerate` answers one request on an event loop and
            raises :class:`RequestFailure`; the engine drives it with concurrency, rate
            limits, retries, a circuit breaker and a budget (HTTP API providers).
        choices: Choice scoring: the provider implements :meth:`Provider.loglikelihood`
            (and, where lm-eval's rolling requests are supported,
            :meth:`Provider.loglikelihood_rolling`); a request with ``choices`` is
            answered with the listed string of highest log-likelihood and every choice's
            score in ``GenerationResponse.choice_scores``.
    """

    batch_generate: bool = True
    async_generate: bool = False
    choices: bool = False


class Provider:
    """Base class of every model provider.

    Subclasses set :attr:`name` and :attr:`capabilities` and implement :meth:`generate`
    (batch providers) or :meth:`agenerate` (async providers). A batch provider reports a
    failed request through ``GenerationResponse.error`` rather than raising, so one bad
    request never loses the rest of the batch; an async provider raises
    :class:`RequestFailure` and lets the engine decide what to do.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    batch_size: int = 1
    """How many requests the engine hands to one :meth:`generate` call."""
    holds_model: ClassVar[bool] = True
    """A run of a local model of this provider holds the model in the run's memory (the
    run queue lets one such run at a time on a host, docs/operations.md); the fake
    provider holds nothing."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @classmethod
    def requirements_problem(cls, spec: ModelSpec) -> Missing | None:
        """What running ``spec`` here still lacks (a package, a model file), or None.

        Called by the preflight before any run, on the class: it must be cheap (find
        packages without importing them, look at files; never load a model or open a
        connection). The API key is checked apart, for every provider that names one.
        """
        return None

    @classmethod
    def api_quota(cls, spec: ModelSpec) -> tuple[str, str | None] | None:
        """Whose request quota a run of ``spec`` draws on, or None for a local model.

        ``(api, server)``: the vendor's API (``openai``, ``anthropic``) with no server, or
        ``<vendor>-compatible`` and the ``host[:port]`` of another server speaking its wire
        format. The run queue limits runs by these (``eval_pipeline/api`` and
        ``eval_pipeline/api_server`` tags, docs/operations.md).
        """
        return None

    def load(self) -> Any:
        """Load the model now (idempotent) and return it; None when there is nothing to load.

        Called before generation so that load time is measured apart from it; the object
        returned identifies the loaded model (one object per load).
        """
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in order."""
        raise NotImplementedError(f"provider {self.name!r} has no batch generate")

    async def agenerate(self, request: GenerationRequest) -> GenerationResponse:
        """Answer one request; raises :class:`RequestFailure` when it fails."""
        raise NotImplementedError(f"provider {self.name!r} has no async generate")

    # -- choice scoring (providers whose capabilities say ``choices``) -----------------

    def loglikelihood(self, requests: Sequence[GenerationRequest]) -> list[ChoiceScores]:
        """Score every choice of every request; one :class:`ChoiceScores` per request, in order.

        For each request the *context* is its messages: the one user message's text as-is
        for ``prompt_format == "completion"``, the chat template's rendering (with the
        generation prompt, or continuing a final assistant turn) for ``"chat"``. For each
        string in ``request.choices``, in order, the result holds the sum over the
        continuation's tokens of ``log P(token | context, the continuation's tokens
        before it)`` (natural log), the number of tokens summed, and whether every one of
        them is the model's most likely next token (``greedy``; lm-eval's ``is_greedy``).

        The tokenization boundary is lm-eval's ``_encode_pair`` for completion format:
        the context's trailing whitespace moves to the start of the continuation, the
        whole text ``context + continuation`` is tokenized once, and the continuation's
        tokens are those after ``len(encode(context))`` (so a token that merges across
        the boundary counts as the continuation's); an empty context is the prefix token
        (BOS, or EOS without one). Chat format appends each choice's own tokens to the
        template's. A request whose ``request_type`` is ``loglikelihood`` must have
        every ``greedy`` flag set; for plain choice decoding ``greedy`` may be None
        where the provider cannot tell.

        Raises:
            UnsupportedRequest: The provider cannot score continuations (the default).
        """
        raise UnsupportedRequest(f"provider {self.name!r} does not score choices")

    def loglikelihood_rolling(
        self, requests: Sequence[GenerationRequest]
    ) -> list[ContinuationScore]:
        """The log-likelihood of each request's one choice, a whole text, with no context.

        For lm-eval's ``loglikelihood_rolling`` requests (perplexity tasks): the text
        ``request.choices[0]`` is tokenized alone (completion format, the tokenizer's own
        special tokens as lm-eval's ``tok_encode``), cut into disjoint windows of at most
        the model's context length ``L``, the first conditioned on the prefix token
        (BOS, or EOS without one) and each later one on as many of the tokens before it
        as fit in ``L`` positions, so that every token is scored exactly once. The
        result sums every token's log-probability (natural log), counts the tokens, and
        says whether every token was the most likely one (``greedy``).

        Raises:
            UnsupportedRequest: The provider cannot score rolling windows (the default).
        """
        raise UnsupportedRequest(f"provider {self.name!r} does not score rolling windows")

    async def aloglikelihood(self, request: GenerationRequest) -> ChoiceScores:
        """:meth:`loglikelihood` for one request on an event loop (async providers).

        Same semantics; a failed request raises :class:`RequestFailure`.

        Raises:
            UnsupportedRequest: The provider cannot score continuations (the default).
        """
        raise UnsupportedRequest(f"provider {self.name!r} does not score choices")

    async def aclose(self) -> None:
        """Release what the async path holds (connection pools of the current loop)."""
        return None

    def close(self) -> None:
        """Release the provider; a local model may stay cached for the process."""
        return None

    def batch_api(self) -> BatchApi | None:
        """The provider's batch endpoints (the ``batch`` route), or None where it has none."""
        return None

    def telemetry(self) -> dict[str, Any]:
        """What the provider's own work cost so far (local providers: batches, padding share).

        Cumulative over the provider's life; empty where the provider counts nothing.
        """
        return {}

    @property
    def endpoint(self) -> str:
        """Where requests go, for messages (a URL for API providers)."""
        return self.name

    # -- failure classification (async providers) ------------------------------------

    def should_retry(self, failure: RequestFailure) -> bool:
        """Whether the engine retries a request that failed this way."""
        return failure.retryable

    def is_rate_limit(self, failure: RequestFailure) -> bool:
        """Whether the failure says the server is rate limiting this client."""
        return failure.kind == "rate_limited"

    def is_fatal(self, failure: RequestFailure) -> bool:
        """Whether every further request would fail the same way (the partition stops)."""
        return failure.fatal
