"""The batch endpoints of the local API server: OpenAI Batch and Anthropic Message Batches.

Routes (as the real ``openai`` and ``anthropic`` SDKs call them):

- OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}/content``,
  ``POST /v1/batches``, ``GET /v1/batches`` (``after``, ``limit``),
  ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.
- Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches`` (``after_id``,
  ``limit``), ``GET /v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``,
  ``GET /v1/messages/batches/{id}/results`` (JSONL).
- ``POST /_control/batch_config`` sets :class:`BatchConfig`; ``GET /_control/batches`` lists
  every batch created (the duplicate count of a test).

Each request of a batch is answered by the server's online handler, so a batch answer is
exactly the online answer (same text, same token counts). A batch completes
``complete_after_s`` after it was created, on the first look after that; until then it is
in progress. Partial failures are drawn per request from a hash of its ``custom_id`` and how
many batches it has been in, so they do not depend on order and a request sent again can
succeed; ``expire_fraction`` of a batch's requests expire instead of
completing; a cancelled batch answers nothing that was not done.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

Reply = tuple[int, dict[str, str], bytes]
# The online handler: (flavour, headers, raw body) -> reply, or "drop".
Serve = Callable[[str, dict[str, str], bytes], Awaitable[Reply | str]]


@dataclass
class BatchConfig:
    """How the batch endpoints behave; set through ``/_control/batch_config``."""

    complete_after_s: float = 0.0
    # Share of requests answered with an error (a 500 inside the batch), drawn per custom_id.
    fail_fraction: float = 0.0
    # Share of a batch's requests that expire (the batch ends as expired).
    expire_fraction: float = 0.0
    fault_seed: int = 0


@dataclass
class _Batch:
    id: str
    flavour: str  # "openai" or "anthropic"
    created_at: float
    lines: list[dict[str, Any]]  # each {"custom_id", "body", "url"}
    metadata: dict[str, str] | None = None
    endpoint: str = ""
    input_file_id: str = ""
    status: str = "in_progress"  # in_progress, cancelling, ended
    cancelled: bool = False
    ended_at: float | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def _json(status: int, payload: Any) -> Reply:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


def _not_found(what: str) -> Reply:
    return _json(404, {"error": {"message": f"no such {what}", "type": "not_found_error"}})


def _multipart(headers: dict[str, str], raw: bytes) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` body by field name."""
    ctype = headers.get("content-type", "")
    boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
    parts: dict[str, bytes] = {}
    for chunk in raw.split(b"--" + boundary):
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        marker = b'name="'
        at = head.find(marker)
        if at < 0:
            continue
        name = head[at + len(marker) : head.index(b'"', at + len(marker))].decode()
        parts[name] = body[:-2] if body.endswith(b"\r\n") else body
    return parts


class BatchApp:
    """Files and batches of both flavours, answered through ``serve`` (the online handler)."""

    def __init__(self) -> None:
        self.config = BatchConfig()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self._counter = 0
        # How many batches each custom_id has been in: a request sent again draws anew.
        self._seen: dict[str, int] = {}

    def configure(self, config: BatchConfig) -> None:
        self.config = config

    def owns(self, path: str) -> bool:
        return (
            path.startswith("/v1/files")
            or path.startswith("/v1/batches")
            or path.startswith("/v1/messages/batches")
            or path in ("/_control/batch_config", "/_control/batches")
        )

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{time.time()}:{self._counter}".encode()).hexdigest()[:16]
        return f"{prefix}{self._counter:06d}{digest}"

    def _draw(self, custom_id: str, salt: str) -> float:
        text = f"{self.config.fault_seed}:{salt}:{custom_id}"
        digest = hashlib.sha256(text.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    async def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes, serve: Serve
    ) -> Reply:
        """Answer one batch-API request."""
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        parts = [p for p in path.split("/") if p]
        if path == "/_control/batch_config":
            self.configure(BatchConfig(**json.loads(raw or b"{}")))
            return _json(200, asdict(self.config))
        if path == "/_control/batches":
            return _json(
                200,
                [
                    {
                        "id": b.id,
                        "flavour": b.flavour,
                        "requests": len(b.lines),
                        "metadata": b.metadata,
                        "cancelled": b.cancelled,
                    }
                    for b in self.batches.values()
                ],
            )
        if parts[:2] == ["v1", "files"]:
            return self._files(method, parts[2:], headers, raw)
        if parts[:3] == ["v1", "messages", "batches"]:
            return await self._anthropic(method, parts[3:], params, headers, raw, serve)
        return await self._openai(method, parts[2:], params, raw, serve)

    # -- processing ----------------------------------------------------------------

    async def _advance(self, batch: _Batch, serve: Serve) -> None:
        """End the batch when its time has come, answering its requests."""
        if batch.status == "ended":
            return
        if batch.status == "cancelling":
            batch.status, batch.ended_at = "ended", time.time()
            return
        if time.time() < batch.created_at + self.config.complete_after_s:
            return
        flavour = "openai" if batch.flavour == "openai" else "anthropic"
        pending = []
        for line in batch.lines:
            cid = line["custom_id"]
            nth = self._seen[cid] = self._seen.get(cid, 0) + 1
            if self._draw(f"{cid}:{nth}", "expire") < self.config.expire_fraction:
                batch.results[cid] = {"kind": "expired"}
            elif self._draw(f"{cid}:{nth}", "fail") < self.config.fail_fraction:
                batch.results[cid] = {"kind": "errored", "status": 500}
            else:
                pending.append(line)
        replies = await asyncio.gather(
            *(serve(flavour, {}, json.dumps(line["body"]).encode()) for line in pending)
        )
        for line, reply in zip(pending, replies, strict=True):
            if isinstance(reply, str):
                batch.results[line["custom_id"]] = {"kind": "errored", "status": 500}
                continue
            status, _, body = reply
            kind = "succeeded" if status == 200 else "errored"
            batch.results[line["custom_id"]] = {
                "kind": kind,
                "status": status,
                "body": json.loads(body),
            }
        batch.status, batch.ended_at = "ended", time.time()
        if batch.flavour == "openai":
            self._write_openai_files(batch)

    # -- OpenAI ----------------------------------------------------------------------

    def _files(self, method: str, rest: list[str], headers: dict[str, str], raw: bytes) -> Reply:
        if method == "POST" and not rest:
            form = _multipart(headers, raw)
            if form.get("purpose") != b"batch":
                return _json(400, {"error": {"message": "purpose must be batch", "type": "x"}})
            file_id = self._next_id("file-")
            self.files[file_id] = form.get("file", b"")
            return _json(200, self._file_object(file_id))
        if rest and rest[0] in self.files:
            if len(rest) == 2 and rest[1] == "content":
                return 200, {"content-type": "application/octet-stream"}, self.files[rest[0]]
            return _json(200, self._file_object(rest[0]))
        return _not_found("file")

    def _file_object(self, file_id: str) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(self.files[file_id]),
            "created_at": int(time.time()),
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }

    async def _openai(
        self, method: str, rest: list[str], params: dict[str, str], raw: bytes, serve: Serve
    ) -> Reply:
        if method == "POST" and not rest:
            body = json.loads(raw)
            data = self.files.get(body.get("input_file_id", ""))
            if data is None:
                return _not_found("input file")
            lines = []
            for text in data.decode().splitlines():
                if text.strip():
                    item = json.loads(text)
                    lines.append(
                        {"custom_id": item["custom_id"], "body": item["body"], "url": item["url"]}
                    )
            batch = _Batch(
                id=self._next_id("batch_"),
                flavour="openai",
                created_at=time.time(),
                lines=lines,
                metadata=body.get("metadata"),
                endpoint=body.get("endpoint", ""),
                input_file_id=body["input_file_id"],
            )
            self.batches[batch.id] = batch
            return _json(200, self._openai_object(batch))
        if method == "GET" and not rest:
            listed = [b for b in reversed(self.batches.values()) if b.flavour == "openai"]
            if params.get("after"):
                ids = [b.id for b in listed]
                at = ids.index(params["after"]) + 1 if params["after"] in ids else len(ids)
                listed = listed[at:]
            limit = int(params.get("limit", 20))
            page = listed[:limit]
            for b in page:
                await self._advance(b, serve)
            return _json(
                200,
                {
                    "object": "list",
                    "data": [self._openai_object(b) for b in page],
                    "has_more": len(listed) > limit,
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                },
            )
        batch = self.batches.get(rest[0]) if rest else None
        if batch is None or batch.flavour != "openai":
            return _not_found("batch")
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch.status == "in_progress":
                batch.status, batch.cancelled = "cancelling", True
            return _json(200, self._openai_object(batch))
        await self._advance(batch, serve)
        return _json(200, self._openai_object(batch))

    def _write_openai_files(self, batch: _Batch) -> None:
        out, err = [], []
        for line in batch.lines:
            result = batch.results.get(line["custom_id"])
            if result is None:
                continue
            record: dict[str, Any] = {
                "id": self._next_id("batch_req_"),
                "custom_id": line["custom_id"],
            }
            if result["kind"] == "succeeded":
                record["response"] = {
                    "status_code": 200,
                    "request_id": "req",
                    "body": result["body"],
                }
                record["error"] = None
                out.append(record)
            elif result["kind"] == "errored":
                record["response"] = {
                    "status_code": result["status"],
                    "request_id": "req",
                    "body": result.get("body")
                    or {"error": {"message": "Injected batch failure.", "type": "server_error"}},
                }
                record["error"] = None
                err.append(record)
            else:
                record["response"] = None
                record["error"] = {"code": "batch_expired", "message": "not completed in time"}
                err.append(record)
        if out:
            batch.output_file_id = self._next_id("file-")
            self.files[batch.output_file_id] = "".join(json.dumps(r) + "\n" for r in out).encode()
        if err:
            batch.error_file_id = self._next_id("file-")
            self.files[batch.error_file_id] = "".join(json.dumps(r) + "\n" for r in err).encode()

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        done = [r for r in batch.results.values() if r["kind"] == "succeeded"]
        failed = [r for r in batch.results.values() if r["kind"] != "succeeded"]
        if batch.status == "in_progress":
            status = "in_progress"
        elif batch.status == "cancelling":
            status = "cancelling"
        elif batch.cancelled:
            status = "cancelled"
        elif any(r["kind"] == "expired" for r in batch.results.values()):
            status = "expired"
        else:
            status = "completed"
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at),
            "in_progress_at": int(batch.created_at),
            "expires_at": int(batch.created_at) + 86400,
            "completed_at": int(batch.ended_at) if batch.ended_at else None,
            "request_counts": {
                "total": len(batch.lines),
                "completed": len(done),
                "failed": len(failed),
            },
            "metadata": batch.metadata,
        }

    # -- Anthropic -------------------------------------------------------------------

    async def _anthropic(
        self,
        method: str,
        rest: list[str],
        params: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        serve: Serve,
    ) -> Reply:
        if method == "POST" and not rest:
            body = json.loads(raw)
            lines = [
                {"custom_id": r["custom_id"], "body": r["params"], "url": "/v1/messages"}
                for r in body.get("requests") or []
            ]
            batch = _Batch(
                id=self._next_id("msgbatch_"),
                flavour="anthropic",
                created_at=time.time(),
                lines=lines,
            )
            self.batches[batch.id] = batch
            return _json(200, self._anthropic_object(batch, headers))
        if method == "GET" and not rest:
            listed = [b for b in reversed(self.batches.values()) if b.flavour == "anthropic"]
            if params.get("after_id"):
                ids = [b.id for b in listed]
                at = ids.index(params["after_id"]) + 1 if params["after_id"] in ids else len(ids)
                listed = listed[at:]
            limit = int(params.get("limit", 20))
            page = listed[:limit]
            for b in page:
                await self._advance(b, serve)
            return _json(
                200,
                {
                    "data": [self._anthropic_object(b, headers) for b in page],
                    "has_more": len(listed) > limit,
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                },
            )
        batch = self.batches.get(rest[0]) if rest else None
        if batch is None or batch.flavour != "anthropic":
            return _not_found("message batch")
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch.status == "in_progress":
                batch.status, batch.cancelled = "cancelling", True
            return _json(200, self._anthropic_object(batch, headers))
        await self._advance(batch, serve)
        if rest[1:] == ["results"]:
            if batch.status != "ended":
                return _json(400, {"type": "error", "error": {"message": "still processing"}})
            out = []
            for line in batch.lines:
                cid = line["custom_id"]
                result = batch.results.get(cid)
                if result is None:
                    item: dict[str, Any] = {"type": "canceled"}
                elif result["kind"] == "succeeded":
                    item = {"type": "succeeded", "message": result["body"]}
                elif result["kind"] == "expired":
                    item = {"type": "expired"}
                else:
                    item = {
                        "type": "errored",
                        "error": {
                            "type": "error",
                            "error": {"type": "api_error", "message": "Injected batch failure."},
                        },
                    }
                out.append({"custom_id": cid, "result": item})
            text = "".join(json.dumps(r) + "\n" for r in out).encode()
            return 200, {"content-type": "application/binary"}, text
        return _json(200, self._anthropic_object(batch, headers))

    def _anthropic_object(self, batch: _Batch, headers: dict[str, str]) -> dict[str, Any]:
        ended = batch.status == "ended"
        kinds = [r["kind"] for r in batch.results.values()]
        counts = {
            "processing": 0 if ended else len(batch.lines),
            "succeeded": kinds.count("succeeded") if ended else 0,
            "errored": kinds.count("errored") if ended else 0,
            "expired": kinds.count("expired") if ended else 0,
            "canceled": len(batch.lines) - len(kinds) if ended else 0,
        }
        host = headers.get("host", "127.0.0.1")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": {"in_progress": "in_progress", "cancelling": "canceling"}.get(
                batch.status, "ended"
            ),
            "request_counts": counts,
            "ended_at": _iso(batch.ended_at) if batch.ended_at else None,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + 86400),
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.created_at) if batch.cancelled else None,
            "results_url": (
                f"http://{host}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }
