"""A small HTTP/1.1 server on asyncio that speaks the OpenAI and Anthropic wire formats.

It is written on raw asyncio streams rather than a web framework for two reasons: it must
not be the bottleneck of a benchmark (thousands of requests a second on one core), and
injected faults need the socket itself (a dropped connection closes it without a reply).

Endpoints:

- ``POST /v1/chat/completions``: OpenAI chat completions.
- ``POST /v1/messages``: Anthropic messages.
- ``POST /v1/completions``: OpenAI (legacy) completions, as vLLM's and llama.cpp's
  servers answer them; with ``echo`` and ``logprobs`` every prompt token comes back with
  a deterministic log-probability (:func:`completion_tokens`, :func:`token_logprob`).
- ``GET /_control/stats``: request counts (total, per status, per request body).
- ``POST /_control/config``: replace the configuration (JSON body) and reset the counts.
- ``POST /_control/reset``: reset the counts.

Answers are deterministic: ``answer(messages)`` of the request. Faults are drawn from a
hash of (seed, request body, how many times this body was seen), so a run's faults do
not depend on the order requests arrive in, and a retried request can succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from eval_pipeline_tests.apiserver._batch import BatchApp

# New kinds go at the end: a fault is drawn by walking this order, so appending keeps the
# faults of existing seeds where they were.
FAULT_KINDS = ("429", "500", "503", "hang", "drop", "malformed", "empty", "blank")


@dataclass
class ServerConfig:
    """What the server does; every field can be set through ``/_control/config``."""

    latency_s: float = 0.0
    # Server-side rate limit: a token bucket refilled at rpm/60 per second.
    rate_limit_rpm: float | None = None
    rate_limit_burst: float | None = None  # bucket size; default one second's worth
    # Send the flavour's rate-limit headers (OpenAI ``x-ratelimit-*-requests``, Anthropic
    # ``anthropic-ratelimit-requests-*``) with every answer while a rate limit is set.
    rate_limit_headers: bool = False
    # Injected faults: probability per request of each kind in FAULT_KINDS. "empty" is a
    # 200 without text (Anthropic ``content: []``, OpenAI ``content: null``) and zero output
    # tokens; "blank" is empty text cut at the length limit with zero output tokens.
    faults: dict[str, float] = field(default_factory=dict)
    fault_seed: int = 0
    retry_after_s: float = 1.0  # the Retry-After of an injected 429
    hang_s: float = 120.0
    # Every request answered with this status (e.g. 401), if set.
    fail_status: int | None = None
    # Requests must present this key (``Authorization: Bearer`` or ``x-api-key``).
    required_key: str | None = None
    # Error bodies repeat the presented key, the worst case for a client that logs them.
    echo_key_in_errors: bool = True


def answer(messages: list[dict[str, Any]]) -> str:
    """The deterministic completion for a conversation: a short digest of its last message."""
    last = str(messages[-1].get("content", "")) if messages else ""
    digest = hashlib.sha256(last.encode()).hexdigest()[:12]
    return f"answer {digest}"


def completion_tokens(text: str) -> list[str]:
    """The completions endpoint's tokens.

    A run of non-space characters with the whitespace before it; a trailing run of
    whitespace is a token of its own.
    """
    return re.findall(r"\S+|\s+\S*", text)


def token_logprob(previous: str, token: str) -> float:
    """The deterministic log-probability of ``token`` after ``previous``: in [-5.05, -0.05)."""
    digest = hashlib.sha256(f"{previous}\x00{token}".encode()).hexdigest()
    return -(0.05 + (int(digest[:8], 16) % 5000) / 1000)


def body_key(body: dict[str, Any]) -> str:
    """What identifies a request for counting: model, system prompt and messages."""
    parts = [body.get("model"), body.get("system"), body.get("messages")]
    if "prompt" in body:  # completions; chat keys stay what they were
        parts.append(body["prompt"])
    payload = json.dumps(
        parts,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _words(text: str) -> int:
    return max(1, len(text.split()))


class _Bucket:
    def __init__(self, rpm: float, burst: float | None):
        self.rate = rpm / 60.0
        self.capacity = burst if burst else max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take one token; returns 0 on success, else the seconds until one is free."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate

    def headers(self, flavour: str, rpm: float) -> dict[str, str]:
        """The flavour's rate-limit headers for the bucket as it is now."""
        remaining = max(0, math.floor(self.level))
        full_in = max(0.0, (self.capacity - self.level) / self.rate)
        if flavour == "openai":
            return {
                "x-ratelimit-limit-requests": _num(rpm),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": f"{round(full_in * 1000)}ms",
            }
        reset = datetime.fromtimestamp(time.time() + full_in, UTC)
        return {
            "anthropic-ratelimit-requests-limit": _num(rpm),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z"),
        }


class ApiServerApp:
    """Request handling and counters, independent of the socket plumbing."""

    def __init__(self, config: ServerConfig | None = None):
        self.batches = BatchApp()
        self.configure(config or ServerConfig())

    def configure(self, config: ServerConfig) -> None:
        self.config = config
        self.bucket = (
            _Bucket(config.rate_limit_rpm, config.rate_limit_burst)
            if config.rate_limit_rpm
            else None
        )
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.by_outcome: dict[str, int] = {}
        self.by_body: dict[str, list[int]] = {}  # key -> [requests, answered]
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": self.by_path,
            "by_outcome": self.by_outcome,
            "by_body": {k: {"requests": v[0], "answered": v[1]} for k, v in self.by_body.items()},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "first_at": self.first_at,
            "last_at": self.last_at,
            # The server's own CPU time: shows whether a benchmark was server-bound.
            "cpu_s": time.process_time(),
            "config": asdict(self.config),
        }

    def _count(self, outcome: str) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1

    def _fault(self, key: str, nth: int) -> str | None:
        faults = self.config.faults
        if not faults:
            return None
        digest = hashlib.sha256(f"{self.config.fault_seed}:{key}:{nth}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += faults.get(kind, 0.0)
            if u < edge:
                return kind
        return None

    async def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes] | str:
        """Answer one request: (status, headers, body), or ``"drop"`` to close the socket."""
        path, _, query = path.partition("?")
        if self.batches.owns(path):
            return await self.batches.handle(method, path, query, headers, raw, self._serve)
        if path.startswith("/_control/"):
            return self._control(method, path, raw)
        flavours = {
            "/v1/chat/completions": "openai",
            "/v1/messages": "anthropic",
            "/v1/completions": "completions",
        }
        if method != "POST" or path not in flavours:
            return _json(
                404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}
            )
        flavour = flavours[path]
        now = time.time()
        self.requests += 1
        self.first_at = self.first_at or now
        self.last_at = now
        self.by_path[path] = self.by_path.get(path, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve(flavour, headers, raw)
        finally:
            self.in_flight -= 1

    async def _serve(
        self, flavour: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes] | str:
        cfg = self.config
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._count("bad_json")
            return _error(flavour, 400, "invalid_request_error", "request body is not JSON")
        key = body_key(body)
        record = self.by_body.setdefault(key, [0, 0])
        record[0] += 1
        presented = _presented_key(headers)
        if cfg.fail_status is not None:
            self._count(str(cfg.fail_status))
            return _error(
                flavour, cfg.fail_status, _error_type(cfg.fail_status), self._key_message(presented)
            )
        if cfg.required_key is not None and presented != cfg.required_key:
            self._count("401")
            return _error(flavour, 401, "authentication_error", self._key_message(presented))
        limit_headers: dict[str, str] = {}
        if self.bucket is not None:
            wait = self.bucket.take()
            if cfg.rate_limit_headers and cfg.rate_limit_rpm:
                limit_headers = self.bucket.headers(flavour, cfg.rate_limit_rpm)
            if wait > 0:
                self._count("rate_limited")
                return _error(
                    flavour,
                    429,
                    "rate_limit_error",
                    "Rate limit reached for requests per minute.",
                    {
                        "retry-after": str(max(1, math.ceil(wait))),
                        "retry-after-ms": str(int(wait * 1000) + 1),
                        **limit_headers,
                    },
                )
        fault = self._fault(key, record[0])
        if fault == "hang":
            self._count("hang")
            await asyncio.sleep(cfg.hang_s)
            return "drop"
        if cfg.latency_s > 0:
            await asyncio.sleep(cfg.latency_s)
        if fault == "429":
            self._count("fault_429")
            return _error(
                flavour,
                429,
                "rate_limit_error",
                "Injected rate limit.",
                {"retry-after": _num(cfg.retry_after_s)},
            )
        if fault in ("500", "503"):
            self._count(f"fault_{fault}")
            return _error(flavour, int(fault), "api_error", f"Injected server error {fault}.")
        if fault == "drop":
            self._count("drop")
            return "drop"
        if flavour == "completions":
            if fault in ("malformed", "empty", "blank"):
                self._count(fault)
                return 200, {"content-type": "application/json"}, b'{"id": "x", "choices": [{"te'
            self._count("ok")
            record[1] += 1
            return _with(_json(200, _completion(body, key)), limit_headers)
        messages = list(body.get("messages") or [])
        text = answer(messages)
        prompt_words = sum(_words(str(m.get("content", ""))) for m in messages)
        if body.get("system"):
            prompt_words += _words(str(body["system"]))
        if fault == "malformed":
            self._count("malformed")
            return 200, {"content-type": "application/json"}, b'{"id": "x", "choices": [{"mess'
        if fault in ("empty", "blank"):
            self._count(fault)
            return _with(_json(200, _no_text(flavour, body, fault, prompt_words)), limit_headers)
        self._count("ok")
        record[1] += 1
        if flavour == "openai":
            payload = {
                "id": f"chatcmpl-{key[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_words,
                    "completion_tokens": _words(text),
                    "total_tokens": prompt_words + _words(text),
                },
            }
        else:
            payload = {
                "id": f"msg_{key[:12]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_words, "output_tokens": _words(text)},
            }
        return _with(_json(200, payload), limit_headers)

    def _key_message(self, presented: str) -> str:
        shown = presented if self.config.echo_key_in_errors else "***"
        return f"Incorrect API key provided: {shown}."

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if path == "/_control/stats":
            return _json(200, self.stats())
        if path == "/_control/config" and method == "POST":
            self.configure(ServerConfig(**json.loads(raw or b"{}")))
            return _json(200, asdict(self.config))
        if path == "/_control/reset" and method == "POST":
            self.reset()
            return _json(200, {"reset": True})
        return _json(404, {"error": f"no control route {method} {path}"})


def _completion(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A completions answer: per prompt, the echoed prompt with its tokens' log-probs."""
    prompts = body.get("prompt")
    prompts = prompts if isinstance(prompts, list) else [prompts or ""]
    max_tokens = int(body.get("max_tokens") or 0)
    choices, prompt_tokens, output_tokens = [], 0, 0
    for i, prompt in enumerate(prompts):
        tokens = completion_tokens(str(prompt))
        offsets, at = [], 0
        for token in tokens:
            offsets.append(at)
            at += len(token)
        # The first token has no log-probability (nothing before it), as in vLLM.
        logprobs: list[float | None] = [None] + [
            token_logprob(tokens[j - 1], tokens[j]) for j in range(1, len(tokens))
        ]
        generated = answer([{"content": prompt}]) if max_tokens > 0 else ""
        text = (str(prompt) if body.get("echo") else "") + generated
        choice: dict[str, Any] = {"index": i, "text": text, "finish_reason": "length"}
        choice["logprobs"] = (
            {
                "tokens": tokens,
                "token_logprobs": logprobs,
                "top_logprobs": [None]
                + [{t: lp} for t, lp in zip(tokens[1:], logprobs[1:], strict=True)],
                "text_offset": offsets,
            }
            if body.get("echo") and body.get("logprobs") is not None
            else None
        )
        choices.append(choice)
        prompt_tokens += len(tokens)
        output_tokens += _words(generated) if generated else 0
    return {
        "id": f"cmpl-{key[:12]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
        },
    }


def _no_text(flavour: str, body: dict[str, Any], fault: str, prompt_words: int) -> dict[str, Any]:
    """A 200 answer without text and with zero output tokens (an "empty" or "blank" fault)."""
    if flavour == "openai":
        empty = fault == "empty"
        return {
            "id": "chatcmpl-empty",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None if empty else ""},
                    "finish_reason": "stop" if empty else "length",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": 0,
                "total_tokens": prompt_words,
            },
        }
    return {
        "id": "msg_empty",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": [] if fault == "empty" else [{"type": "text", "text": ""}],
        "stop_reason": "end_turn" if fault == "empty" else "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_words, "output_tokens": 0},
    }


def _with(
    result: tuple[int, dict[str, str], bytes], headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    result[1].update(headers)
    return result


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _presented_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return headers.get("x-api-key", "")


def _error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "api_error")


def _error(
    flavour: str, status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    if flavour == "anthropic":
        payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        payload = {"error": {"message": message, "type": kind, "code": None, "param": None}}
    status_, hdrs, body = _json(status, payload)
    hdrs.update(headers or {})
    return status_, hdrs, body


def _json(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def _connection(
    app: ApiServerApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                raw_header = await reader.readline()
                if raw_header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = raw_header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            raw = await reader.readexactly(length) if length else b""
            result = await app.handle(method, path, headers, raw)
            if result == "drop":
                writer.transport.abort()
                return
            status, hdrs, body = result
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
            head += [f"{k}: {v}" for k, v in hdrs.items()]
            head.append(f"content-length: {len(body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, config: ServerConfig | None = None, ready=None) -> None:
    """Serve until cancelled; ``ready(port)`` is called once the socket listens."""
    app = ApiServerApp(config)
    server = await asyncio.start_server(
        lambda r, w: _connection(app, r, w), host, port, backlog=1024, limit=2**20
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()
