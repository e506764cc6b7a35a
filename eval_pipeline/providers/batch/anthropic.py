"""Anthropic Message Batches: ``messages.batches.create`` with one ``custom_id`` per request.

The create call takes only the requests (no metadata), so a submission is recognised by
its request count among the batches created since its intent was recorded (see
:mod:`eval_pipeline.engine.batch`). Results stream from ``messages.batches.results``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

# Any: SDK objects and the JSON lines of batch files (the SDKs type them loosely).
from typing import Any

from eval_pipeline.core.types import GenerationRequest
from eval_pipeline.providers.base import FailureKind, RequestFailure
from eval_pipeline.providers.batch._base import BatchApi, BatchLimits, BatchResult, RemoteBatch


class AnthropicBatchApi(BatchApi):
    """The Message Batches endpoints of Anthropic (or a server speaking them)."""

    limits = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)
    sdk_module = "anthropic"
    sdk_client = "Anthropic"

    def line(self, request: GenerationRequest) -> bytes:
        record = {"custom_id": request.request_hash, "params": self.provider.payload(request)}
        return json.dumps(record, separators=(",", ":")).encode()

    def _remote(self, batch: Any) -> RemoteBatch:
        counts = batch.request_counts.model_dump()
        return RemoteBatch(
            id=batch.id,
            status=batch.processing_status,
            ended=batch.processing_status == "ended",
            total=sum(int(v) for v in counts.values()),
            counts={k: int(v) for k, v in counts.items()},
            created_at=batch.created_at.timestamp(),
        )

    def create(self, submission_id: str, lines: Sequence[bytes]) -> RemoteBatch:
        requests = [json.loads(line) for line in lines]
        try:
            return self._remote(self.client.messages.batches.create(requests=requests))
        except Exception as exc:
            raise self.failure(exc) from None

    def list_since(self, since: float) -> list[RemoteBatch]:
        found = []
        try:
            # Newest first: stop at the first batch created before ``since``.
            for batch in self.client.messages.batches.list(limit=100):
                remote = self._remote(batch)
                if remote.created_at < since:
                    break
                found.append(remote)
        except Exception as exc:
            raise self.failure(exc) from None
        return found

    def retrieve(self, batch_id: str) -> RemoteBatch:
        try:
            return self._remote(self.client.messages.batches.retrieve(batch_id))
        except Exception as exc:
            raise self.failure(exc) from None

    def cancel(self, batch_id: str) -> RemoteBatch:
        try:
            return self._remote(self.client.messages.batches.cancel(batch_id))
        except Exception as exc:
            raise self.failure(exc) from None

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        try:
            stream = self.client.messages.batches.results(batch_id)
        except Exception as exc:
            raise self.failure(exc) from None
        for item in stream:
            result = item.result
            if result.type == "succeeded":
                yield self.parsed(item.custom_id, result.message.model_dump(mode="json"))
            elif result.type == "errored":
                error = result.error.error
                kind: FailureKind = (
                    "bad_request" if error.type == "invalid_request_error" else "server"
                )
                yield BatchResult(
                    item.custom_id, failure=RequestFailure(kind, str(error.message)[:500])
                )
            else:  # expired or canceled: never answered
                yield BatchResult(
                    item.custom_id,
                    failure=RequestFailure("other", f"request {result.type}"),
                    missing=True,
                )
