"""OpenAI Batch: a JSONL input file, ``batches.create``, results from the output and error files.

Each line is ``{"custom_id", "method": "POST", "url": "/v1<path>", "body"}`` with the body the
online provider would post (``/v1/chat/completions``, or ``/v1/completions`` for the
completions provider). The submission id goes into the batch's ``metadata``, so a process
killed between ``batches.create`` and recording the batch id finds its batch again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

# Any: SDK objects and the JSON lines of batch files (the SDKs type them loosely).
from typing import Any

from eval_pipeline.core.types import GenerationRequest
from eval_pipeline.providers._api import _status_kind
from eval_pipeline.providers.base import RequestFailure
from eval_pipeline.providers.batch._base import BatchApi, BatchLimits, BatchResult, RemoteBatch

SUBMISSION_KEY = BatchApi.submission_key
# Statuses after which nothing in the batch changes.
ENDED = frozenset({"completed", "expired", "cancelled", "failed"})


class OpenAIBatchApi(BatchApi):
    """The OpenAI batch endpoints (or an OpenAI-compatible server's)."""

    limits = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
    sdk_module = "openai"
    sdk_client = "OpenAI"

    @property
    def url(self) -> str:
        return "/v1" + self.provider.path

    def line(self, request: GenerationRequest) -> bytes:
        body = self.provider.payload(request)
        record = {
            "custom_id": request.request_hash,
            "method": "POST",
            "url": self.url,
            "body": body,
        }
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"

    def _remote(self, batch: Any) -> RemoteBatch:
        counts = batch.request_counts
        return RemoteBatch(
            id=batch.id,
            status=batch.status,
            ended=batch.status in ENDED,
            total=counts.total if counts else 0,
            counts={"completed": counts.completed, "failed": counts.failed} if counts else {},
            created_at=float(batch.created_at),
            metadata=dict(batch.metadata or {}),
        )

    def upload(self, lines: Sequence[bytes]) -> str:
        """The input file's id."""
        try:
            uploaded = self.client.files.create(
                file=("batch.jsonl", b"".join(lines)), purpose="batch"
            )
        except Exception as exc:
            raise self.failure(exc) from None
        return str(uploaded.id)

    def create(self, submission_id: str, lines: Sequence[bytes]) -> RemoteBatch:
        file_id = self.upload(lines)
        try:
            batch = self.client.batches.create(
                input_file_id=file_id,
                endpoint=self.url,
                completion_window="24h",
                metadata={SUBMISSION_KEY: submission_id},
            )
        except Exception as exc:
            raise self.failure(exc) from None
        return self._remote(batch)

    def find(self, submission_id: str, count: int, since: float) -> list[RemoteBatch]:
        # Exact: the batch carries the submission id in its metadata.
        return [
            b for b in self.list_since(since) if b.metadata.get(SUBMISSION_KEY) == submission_id
        ]

    def list_since(self, since: float) -> list[RemoteBatch]:
        found = []
        try:
            # Newest first: stop at the first batch created before ``since``.
            for batch in self.client.batches.list(limit=100):
                if batch.created_at < since:
                    break
                found.append(self._remote(batch))
        except Exception as exc:
            raise self.failure(exc) from None
        return found

    def retrieve(self, batch_id: str) -> RemoteBatch:
        try:
            return self._remote(self.client.batches.retrieve(batch_id))
        except Exception as exc:
            raise self.failure(exc) from None

    def cancel(self, batch_id: str) -> RemoteBatch:
        try:
            return self._remote(self.client.batches.cancel(batch_id))
        except Exception as exc:
            raise self.failure(exc) from None

    def _lines(self, file_id: str | None) -> Iterator[dict[str, Any]]:
        if not file_id:
            return
        try:
            text = self.client.files.content(file_id).text
        except Exception as exc:
            raise self.failure(exc) from None
        for raw in text.splitlines():
            if raw.strip():
                yield json.loads(raw)

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        try:
            batch = self.client.batches.retrieve(batch_id)
        except Exception as exc:
            raise self.failure(exc) from None
        for record in self._lines(batch.output_file_id):
            yield self._result(record)
        for record in self._lines(batch.error_file_id):
            yield self._result(record)

    def _result(self, record: dict[str, Any]) -> BatchResult:
        custom_id = str(record.get("custom_id"))
        response = record.get("response") or {}
        status = int(response.get("status_code") or 0)
        if status == 200:
            return self.parsed(custom_id, response.get("body"))
        if status:
            body = response.get("body") or {}
            error = body.get("error") if isinstance(body, dict) else None
            message = str((error or {}).get("message") or f"HTTP {status}")
            failure = RequestFailure(_status_kind(status), message[:500], status=status)
            return BatchResult(custom_id, failure=failure)
        error = record.get("error") or {}
        code = str(error.get("code") or "")
        message = str(error.get("message") or code or "no answer")[:500]
        # Expired or cancelled before it ran: the provider never answered this request.
        return BatchResult(custom_id, failure=RequestFailure("other", message), missing=True)
