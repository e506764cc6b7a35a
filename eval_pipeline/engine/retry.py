"""Retry policy for API requests, on tenacity.

Only transient failures are retried (429, 5xx, timeouts, connection errors, malformed
bodies); 400/401/403/404 are recorded at once. The wait is the server's ``Retry-After`` when
it sends one (plus a little jitter so the requests it rejected together do not return
together), else full-jitter exponential backoff. The exponent counts only the failures
that came without ``Retry-After``: a server that paces a request explicitly has already
said how long to wait, and compounding its pauses into the backoff would make one unlucky
request the tail of the whole partition. A ``Retry-After`` longer than the configured
maximum ends the request's retries rather than stalling the partition.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from eval_pipeline.providers import ApiOptions, RequestFailure


def _failure(state: RetryCallState) -> RequestFailure | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc if isinstance(exc, RequestFailure) else None


class wait_retry_after_or_backoff(wait_base):  # noqa: N801 - tenacity's naming style
    """The server's ``Retry-After`` (with up to 10% jitter) if given, else backoff.

    The backoff is full-jitter exponential over the failures without ``Retry-After``; one
    instance per request keeps that count.
    """

    def __init__(self, initial_s: float, max_s: float):
        self.initial_s = initial_s
        self.max_s = max_s
        self.unguided = 0

    def __call__(self, retry_state: RetryCallState) -> float:
        failure = _failure(retry_state)
        if failure is not None and failure.retry_after_s is not None:
            return failure.retry_after_s * (1.0 + 0.1 * random.random())
        self.unguided += 1
        return random.uniform(0.0, min(self.max_s, self.initial_s * 2 ** (self.unguided - 1)))


class stop_if_retry_after_exceeds(stop_base):  # noqa: N801
    """Stop when the server asks for a longer pause than ``max_s``."""

    def __init__(self, max_s: float):
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        failure = _failure(retry_state)
        return bool(failure and failure.retry_after_s and failure.retry_after_s > self.max_s)


def retrying(
    options: ApiOptions,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    should_retry: Callable[[RequestFailure], bool] | None = None,
) -> AsyncRetrying:
    """The tenacity controller for one request under ``options``.

    ``should_retry`` is the provider's own classification
    (:meth:`~eval_pipeline.providers.Provider.should_retry`); by default a failure of a
    transient kind is retried.
    """

    def retry(exc: BaseException) -> bool:
        if not isinstance(exc, RequestFailure):
            return False
        return should_retry(exc) if should_retry is not None else exc.retryable

    return AsyncRetrying(
        sleep=sleep,
        retry=retry_if_exception(retry),
        stop=stop_after_attempt(options.max_retries + 1)
        | stop_if_retry_after_exceeds(options.retry_after_max_s),
        wait=wait_retry_after_or_backoff(options.backoff_initial_s, options.backoff_max_s),
        before_sleep=before_sleep,
        reraise=True,
    )
