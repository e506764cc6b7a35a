"""What the HTTP API providers share: options, the API key, the SDK client, error mapping.

An API provider sends one request per call and raises
:class:`~eval_pipeline.providers.base.RequestFailure` when it fails; the engine asks the
provider's classification hooks whether to retry, record the error, or stop the
partition. Every message that leaves a provider passes through :func:`redact`, so the API
key can not reach an error column, a log line or asset metadata even when a server
echoes it back.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import os
import time
from collections.abc import Sequence

# Any: the SDK module, its errors and headers, and JSON answers (any shape).
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.types import GenerationRequest
from eval_pipeline.providers._answers import Answer, Json, checked_response
from eval_pipeline.providers.base import Capabilities, FailureKind, Provider, RequestFailure

if TYPE_CHECKING:
    from eval_pipeline.core.specs import ModelSpec
    from eval_pipeline.core.types import GenerationResponse


class ApiOptions(BaseModel):
    """``options:`` of an API model in ``models.yaml`` (the engine reads the last six).

    Attributes:
        api_key_env: Environment variable holding the API key, read at run time; ``null``
            for servers that need no key (a local vLLM or llama.cpp server).
        base_url: Another server speaking the same wire format (OpenAI-compatible servers,
            proxies); the provider's public endpoint when unset.
        request_timeout_s: Deadline of one HTTP request, connection included.
        max_retries: Retries after the first attempt, for transient failures only.
        backoff_initial_s: Upper bound of the first jittered backoff; it doubles per retry.
        backoff_max_s: Cap on one backoff wait.
        retry_after_max_s: The longest ``Retry-After`` honoured; a server asking for more
            (an exhausted daily quota, say) ends that request's retries instead.
        breaker_failures: Consecutive failed attempts that open the circuit breaker.
    """

    model_config = ConfigDict(extra="forbid")

    api_key_env: str | None
    base_url: str | None = None
    request_timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(8, ge=0, le=50)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    retry_after_max_s: float = Field(120.0, gt=0)
    breaker_failures: int = Field(20, ge=1)


def resolve_api_key(slug: str, env_name: str | None) -> str | None:
    """Read the API key from the environment at run time (Dagster ``EnvVar`` semantics).

    Raises:
        EvalPipelineError: The variable is unset or empty; the message names the variable
            (never a value).
    """
    if env_name is None:
        return None
    value = os.environ.get(env_name, "")
    if not value.strip():
        raise EvalPipelineError(
            f"model {slug!r}: the API key environment variable {env_name} is not set; "
            f"export {env_name}=... (or set options.api_key_env in models.yaml to the variable "
            "that holds the key) and run again. No request was sent."
        )
    return value


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in ``text`` with ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


# Raw-response mode of the SDKs' generic ``post``: the parsed body and the headers.
_RAW_RESPONSE = {"X-Stainless-Raw-Response": "raw"}


def limit_headers(headers: Any) -> dict[str, str] | None:
    """The rate-limit headers (``x-ratelimit-*``, ``anthropic-ratelimit-*``) of a response."""
    if headers is None:
        return None
    found = {k.lower(): str(v) for k, v in headers.items() if "ratelimit" in k.lower()}
    return found or None


def _status_kind(status: int) -> FailureKind:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status >= 500 or status in (408, 409):
        return "server"
    return "bad_request"


def _body_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)


def classify_sdk_error(sdk: Any, exc: BaseException, secrets: tuple[str, ...]) -> RequestFailure:
    """Map an ``openai`` or ``anthropic`` SDK exception (same family of classes) to a failure."""
    if isinstance(exc, sdk.APITimeoutError):
        return RequestFailure("timeout", "request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        return RequestFailure("connection", redact(f"connection error{detail}", secrets)[:300])
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        return RequestFailure(
            _status_kind(status),
            redact(_body_message(exc), secrets)[:500],
            status=status,
            retry_after_s=parse_retry_after(getattr(exc.response, "headers", None)),
            limit_headers=limit_headers(getattr(exc.response, "headers", None)),
        )
    if isinstance(exc, (json.JSONDecodeError, sdk.APIResponseValidationError)):
        return RequestFailure("malformed", redact(f"malformed response body: {exc}", secrets)[:300])
    return RequestFailure("other", redact(f"{type(exc).__name__}: {exc}", secrets)[:300])


class ApiProviderBase(Provider):
    """What the HTTP API providers share: the key, and one SDK client per event loop.

    Subclasses name their options model, SDK module, async client class, default endpoint
    and request path, and implement their wire format: :meth:`body` (the request's
    messages and sampling as JSON fields; :meth:`payload` adds what every API shares) and
    :meth:`parse` (JSON answer to text, finish reason and token counts).
    """

    capabilities = Capabilities(async_generate=True)
    batch_size = 1
    options_model: type[ApiOptions] = ApiOptions
    sdk_module: str
    client_class: str
    default_endpoint: str
    path: str  # posted to, relative to the endpoint
    answer_kind: str  # what a well-formed answer is, for the "malformed" message

    @classmethod
    def api_quota(cls, spec: ModelSpec) -> tuple[str, str | None] | None:
        # The SDK names the wire format; a base_url elsewhere than the vendor's is another
        # server with its own quota.
        base_url = spec.options.get("base_url")
        vendor = urlsplit(cls.default_endpoint).netloc
        server = urlsplit(str(base_url)).netloc if base_url else vendor
        if server == vendor:
            return cls.sdk_module, None
        return f"{cls.sdk_module}-compatible", server

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for ``request``: the shared opening, then :meth:`body`'s fields.

        Every API takes the model id and a token limit (named by :meth:`max_tokens_field`)
        and answers one completion per request (``sampling.n`` 1, else ``bad_request``).
        """
        sampling = request.sampling
        if sampling.n != 1:
            raise RequestFailure(
                "bad_request", f"sampling.n={sampling.n}: one completion per request only"
            )
        return {
            "model": self.spec.model_id,
            **self.body(request),
            self.max_tokens_field(): sampling.max_tokens,
        }

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The wire format's own fields: the prompt (messages) and the sampling settings."""
        raise NotImplementedError

    def max_tokens_field(self) -> str:
        """The body field that caps the answer's tokens."""
        return "max_tokens"

    def parse(self, data: Json) -> Answer:
        """The answer in the decoded JSON body (a reader of :mod:`._answers`).

        Raises:
            RequestFailure: ``malformed`` for any body its contract does not allow.
        """
        raise NotImplementedError

    async def agenerate(self, request: GenerationRequest) -> GenerationResponse:
        """Send one request; raises :class:`RequestFailure` on any failure."""
        from eval_pipeline.core.types import GenerationResponse

        body = self.payload(request)
        client = self._sdk_client()
        start = time.perf_counter()
        try:
            raw = await client.post(
                self.path, cast_to=object, body=body, options={"headers": _RAW_RESPONSE}
            )
            data = await raw.parse()
        except Exception as exc:
            raise classify_sdk_error(self._sdk, exc, self.secrets) from None
        latency = time.perf_counter() - start
        found = limit_headers(raw.headers)
        answer = self.parse(data)
        return checked_response(
            GenerationResponse(
                completion=answer.text,
                finish_reason=answer.finish_reason,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                latency_s=latency,
                info={"served_model": redact(answer.served_model, self.secrets)},
                limit_headers=found or None,
            )
        )

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.options: Any = self.options_model.model_validate(spec.options)
        # Read at run time, so a missing key fails here, before any request.
        self._api_key = resolve_api_key(spec.slug, self.options.api_key_env)
        # Imported here: not at package import, and not inside the first request.
        self._sdk: Any = importlib.import_module(self.sdk_module)
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def api_key(self) -> str | None:
        """The key read from ``api_key_env`` (for the provider's own SDK clients only)."""
        return self._api_key

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    @property
    def endpoint(self) -> str:
        return self.options.base_url or self.default_endpoint

    def _sdk_client(self) -> Any:
        # httpx connection pools belong to one event loop; each engine run has its own.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = getattr(self._sdk, self.client_class)(
                api_key=self._api_key or "not-needed",
                base_url=self.options.base_url,
                max_retries=0,  # the engine retries
                # The engine enforces the deadline; the SDK's is a backstop just behind it.
                timeout=self.options.request_timeout_s + 5.0,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.close()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Plain sequential calls without retries (the engine uses ``agenerate``)."""
        return asyncio.run(_sequential(self, requests))

    def close(self) -> None:
        self._client, self._loop = None, None


async def _sequential(provider: Any, requests: Sequence[Any]) -> list[Any]:
    from eval_pipeline.core.types import GenerationResponse

    out = []
    try:
        for request in requests:
            try:
                out.append(await provider.agenerate(request))
            except RequestFailure as failure:
                out.append(GenerationResponse(None, "error", error=str(failure)))
    finally:
        await provider.aclose()
    return out
