"""Posting a JSON body to a webhook with bounded retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

# Any: the webhook's JSON payload.
from typing import Any

import httpx

# Statuses worth another try: the receiver is throttling or briefly broken. Any other
# 4xx means the URL or the body is wrong, and repeating the request cannot fix it.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class PostResult:
    """How a delivery went: ``ok`` once the receiver answered 2xx."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PostResult:
    """POST ``payload`` as JSON to ``url``, retrying timeouts, connection errors, 429 and 5xx.

    Waits ``backoff_s * 2**n`` (with jitter) between attempts, or the receiver's
    ``Retry-After`` when it sends one (capped at 30 s). Never raises for delivery problems:
    the result says what happened, so a sensor can keep the alert for a later tick.

    Args:
        url: The webhook URL (a Slack incoming webhook or any JSON receiver).
        payload: The JSON body.
        attempts: Tries in all, at least one.
        backoff_s: The first wait between tries.
        timeout_s: Per-request timeout.
        sleep: Injected for tests.
    """
    last_status: int | None = None
    last_error: str | None = None
    for attempt in range(1, max(1, attempts) + 1):
        wait = backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            last_status, last_error = None, f"{type(exc).__name__}: {exc}"
        else:
            last_status = response.status_code
            if response.is_success:
                return PostResult(ok=True, attempts=attempt, status=last_status)
            last_error = f"HTTP {last_status}: {response.text[:200]}"
            if last_status not in RETRY_STATUSES:
                return PostResult(ok=False, attempts=attempt, status=last_status, error=last_error)
            retry_after = _retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                wait = min(retry_after, MAX_RETRY_AFTER_S)
        if attempt < attempts:
            sleep(wait)
    return PostResult(ok=False, attempts=max(1, attempts), status=last_status, error=last_error)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
