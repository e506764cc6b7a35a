"""The batch API contract shared by the OpenAI and Anthropic adapters."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.providers._answers import checked_response
from eval_pipeline.providers._api import ApiProviderBase, classify_sdk_error, redact
from eval_pipeline.providers.base import RequestFailure


@dataclass(frozen=True)
class BatchLimits:
    """The most one provider batch may hold: requests, and encoded bytes."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True)
class RemoteBatch:
    """A provider batch as the provider reports it."""

    id: str
    status: str  # the provider's own word (in_progress, completed, expired, ended, ...)
    ended: bool  # no request of it will change any more; results can be read
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0  # seconds since the epoch
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one request of a batch: an answer, or a failure.

    ``missing`` failures (expired, cancelled) mean the provider never answered: the
    request is sent again in a later batch.
    """

    custom_id: str
    response: GenerationResponse | None = None
    failure: RequestFailure | None = None
    missing: bool = False


class BatchApi:
    """One provider's batch endpoints; subclasses implement the wire format."""

    limits: BatchLimits
    sdk_module: str = ""
    # The SDK's synchronous client class (``OpenAI``, ``Anthropic``): batches are
    # created, polled and read outside the event loop.
    sdk_client: str = ""
    # The metadata key holding the submission id, where the API keeps metadata.
    submission_key: str = "eval_pipeline_submission"

    def __init__(self, provider: ApiProviderBase):
        self.provider = provider
        self._sdk: ModuleType = importlib.import_module(self.sdk_module)
        # Any: the SDK's client, typed by the SDK, which is imported on use.
        self.client: Any = getattr(self._sdk, self.sdk_client)(
            api_key=provider.api_key or "not-needed",
            base_url=provider.options.base_url,
            max_retries=3,
            timeout=max(60.0, provider.options.request_timeout_s),
        )

    # -- what subclasses implement ---------------------------------------------------

    def line(self, request: GenerationRequest) -> bytes:
        """One request of a batch, encoded; raises :class:`RequestFailure` if it can't be sent."""
        raise NotImplementedError

    def create(self, submission_id: str, lines: Sequence[bytes]) -> RemoteBatch:
        """Create the batch of ``lines``, tagged with ``submission_id`` where the API allows."""
        raise NotImplementedError

    def list_since(self, since: float) -> list[RemoteBatch]:
        """Every batch of the account created since ``since`` (seconds since the epoch)."""
        raise NotImplementedError

    def find(self, submission_id: str, count: int, since: float) -> list[RemoteBatch]:
        """Batches that may be this submission's.

        Created since ``since`` with ``count`` requests and, where the API keeps metadata,
        tagged with ``submission_id``.
        """
        return [
            b
            for b in self.list_since(since)
            if b.total == count
            and b.metadata.get(self.submission_key, submission_id) == submission_id
        ]

    def retrieve(self, batch_id: str) -> RemoteBatch:
        raise NotImplementedError

    def cancel(self, batch_id: str) -> RemoteBatch:
        raise NotImplementedError

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Every answered or failed request of an ended batch (in no particular order)."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------

    def failure(self, exc: Exception) -> RequestFailure:
        """An SDK exception as a classified failure, with no secret in its message."""
        return classify_sdk_error(self._sdk, exc, self.provider.secrets)

    def answer(self, data: object) -> GenerationResponse:
        """A successful answer's JSON body, read by the provider's own strict reader.

        Raises:
            RequestFailure: ``malformed`` for a body the reader refuses, or an answer that
                fails the gate every answer passes before the cache.
        """
        answer = self.provider.parse(data)  # type: ignore[arg-type]  # a JSON value
        return checked_response(
            GenerationResponse(
                completion=answer.text,
                finish_reason=answer.finish_reason,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                info={
                    "served_model": redact(answer.served_model, self.provider.secrets),
                    "route": "batch",
                },
            )
        )

    def parsed(self, custom_id: str, data: object) -> BatchResult:
        """``data`` (a 200 answer's body) as a result: an answer, or a malformed failure."""
        try:
            return BatchResult(custom_id, response=self.answer(data))
        except RequestFailure as failure:
            return BatchResult(custom_id, failure=failure)
