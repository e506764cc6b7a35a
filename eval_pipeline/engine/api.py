"""The async path of the engine, for HTTP API providers (``openai``, ``anthropic``).

One asyncio task per request; each attempt of a request:

1. takes one of ``limits.concurrency`` slots (bounded concurrency per provider),
2. waits for the request rate (shared by the runs against the same server and model,
   lowered when the server answers 429: :class:`~.ratelimit.AdaptiveRate`) and the
   token limiter (so a run at the server's limit sees no 429s),
3. reserves its worst-case cost against the spend budget,
4. is sent with a hard deadline (``request_timeout_s``).

Retries (tenacity) wait outside the slot, so a request backing off never holds back the
others. A success is written to the response cache at once, so a run killed with SIGKILL
loses at most the requests in flight. The run stops early, recording the rows it did not
get to as ``not attempted``, when the provider rejects the credentials, when the circuit
breaker opens, when the spend budget is reached or when the partition's wall-clock cap
passes; the caller then fails the step with the message in ``ApiRunOutcome.stopped``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.engine.breaker import CircuitBreaker
from eval_pipeline.engine.budget import SpendBudget
from eval_pipeline.engine.cache import ResponseCache
from eval_pipeline.engine.leases import RateLease
from eval_pipeline.engine.ratelimit import SHARED_RATES, RateLimiter
from eval_pipeline.engine.retry import retrying
from eval_pipeline.engine.slots import PrioritySlots
from eval_pipeline.providers import (
    ApiOptions,
    ApiProviderBase,
    Provider,
    RequestFailure,
    checked_response,
)

if TYPE_CHECKING:  # engine.run imports this module when it runs an API provider
    from eval_pipeline.engine.run import RunStats

NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True)
class RunControls:
    """Per-run limits that come from the run's configuration rather than the catalog.

    Attributes:
        budget_usd: Stop sending once the next request could take this run's new spend
            past this many US dollars (cached responses cost nothing).
        partition_timeout_s: Wall-clock cap of the partition's generation; what is not
            answered by then is recorded as not attempted.
        request_timeout_s: Overrides the catalog's per-request deadline.
        budget_ledger: A file shared by every partition, judge and job of the run: with it
            ``budget_usd`` is the whole run's budget rather than this partition's.
        rate_leases: A folder where the processes running the same model at once hold
            leases; the catalog's requests per minute are split between them.
        route: ``batch`` or ``online`` over the catalog's ``route`` (``--batch``, a run tag).
        batch_dir: Where the batch route records its submissions (``runs/batches`` of the
            store); the batch route needs it.
        run_id: The run the batches belong to (recorded with each submission).
        batch_poll_s: First wait between polls of open batches; it grows to a minute.
        batch_wait: Wait for the batches in this process; else submit them and raise
            ``BatchesPending`` (the batch sensor requests the run that collects them).
        partition: The partition key (``dataset|model``) the requests belong to.
        batch_fallback_online: Send online what the batches left unanswered after their
            last round (expired, cancelled), instead of recording errors.
    """

    budget_usd: float | None = None
    partition_timeout_s: float | None = None
    request_timeout_s: float | None = None
    budget_ledger: str | None = None
    rate_leases: str | None = None
    route: str | None = None
    batch_dir: str | None = None
    run_id: str | None = None
    batch_poll_s: float = 1.0
    batch_wait: bool = True
    partition: str | None = None
    batch_fallback_online: bool = False


class GenerationStopped(EvalPipelineError):
    """The partition stopped before answering every row; the message says why and how to resume."""


@dataclass
class ApiRunOutcome:
    """Why the run stopped before answering every request (None: it did not)."""

    stopped: str | None = None


def estimate_tokens(text_chars: int, max_tokens: int) -> int:
    """A request's worst-case token count before sending it.

    About 4 characters per token in, ``max_tokens`` out. Used for tokens-per-minute limits
    and budget reservations.
    """
    return text_chars // 4 + 1 + max_tokens


class _Stop(Exception):
    """Raised inside a request's task when the run has stopped sending."""


def run_api_requests(
    provider: Provider,
    spec: ModelSpec,
    todo: Sequence[GenerationRequest],
    cache: ResponseCache | None,
    stats: RunStats,
    results: dict[str, GenerationResponse],
    *,
    controls: RunControls | None = None,
    on_progress: Callable[[], None] | None = None,
    progress_every_s: float = 10.0,
) -> ApiRunOutcome:
    """Answer ``todo`` (uncached, distinct requests) through an async provider.

    Every request gets a response in ``results`` (keyed by request hash): an answer, its
    error, or ``not attempted`` with the reason the run stopped. ``results`` and ``stats``
    (a :class:`~eval_pipeline.engine.run.RunStats`) are updated as the run goes, so
    ``on_progress``, called every ``progress_every_s`` seconds, can report from them.
    """
    run = _ApiRun(provider, spec, todo, cache, stats, results, controls or RunControls())

    async def main() -> ApiRunOutcome:
        try:
            return await run.run(on_progress, progress_every_s)
        finally:
            await provider.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from code that already runs an event loop (a notebook): use a fresh thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


class _ApiRun:
    def __init__(
        self,
        provider: Provider,
        spec: ModelSpec,
        todo: Sequence[GenerationRequest],
        cache: ResponseCache | None,
        stats: RunStats,
        results: dict[str, GenerationResponse],
        controls: RunControls,
    ):
        self.provider = provider
        self.spec = spec
        self.todo = list(todo)
        self.cache = cache
        self.stats = stats
        self.controls = controls
        # Only the HTTP API providers answer asynchronously (capabilities.async_generate).
        if not isinstance(provider, ApiProviderBase):
            raise TypeError(f"provider {provider.name!r} is asynchronous but no API provider")
        self.options: ApiOptions = provider.options
        self.timeout_s = controls.request_timeout_s or self.options.request_timeout_s
        limits = spec.limits
        # One request rate per server and model, shared with the runs that use it at the
        # same time in this process (two partitions of a model share the server's limit).
        self._rate_key = (provider.name, provider.endpoint, spec.model_id)
        rpm = limits.requests_per_minute
        self._rate_ceiling = rpm / 60.0 if rpm else None
        self.tokens_limiter = (
            RateLimiter.per_minute(limits.tokens_per_minute, burst_s=1.0)
            if limits.tokens_per_minute
            else None
        )
        self.breaker = CircuitBreaker(self.options.breaker_failures)
        self.budget = SpendBudget(controls.budget_usd, controls.budget_ledger)
        self.results = results
        self.attempts: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self.stopped: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._slow_writes = 0

    # -- stopping ---------------------------------------------------------------------

    def _stop(self, reason: str, *, hard: bool) -> None:
        """Stop sending; ``hard`` also cancels the requests in flight."""
        if self.stopped is not None:
            return
        self.stopped = reason
        if hard:
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current and not task.done():
                    task.cancel()

    @staticmethod
    def _resume_hint() -> str:
        return (
            "Answered rows are in the response cache: materialize the partition again and "
            "only the missing rows are sent."
        )

    # -- one request ------------------------------------------------------------------

    def _estimate(self, request: GenerationRequest) -> tuple[int, float]:
        chars = sum(len(m.content) for m in request.messages)
        tokens = estimate_tokens(chars, request.sampling.max_tokens)
        cost = self.spec.pricing.cost(
            tokens - request.sampling.max_tokens, request.sampling.max_tokens
        )
        return tokens, cost

    async def _attempt(
        self, request: GenerationRequest, est_tokens: int, est_cost: float
    ) -> GenerationResponse:
        key = request.request_hash
        # Retries first: a request that already waited out a backoff must not queue again
        # behind every request not yet sent.
        await self._slots.acquire(0 if key in self.attempts else 1)
        try:
            return await self._send(request, est_tokens, est_cost)
        finally:
            self._slots.release()

    async def _send(
        self, request: GenerationRequest, est_tokens: int, est_cost: float
    ) -> GenerationResponse:
        if self.stopped:
            raise _Stop
        epoch = await self.request_rate.acquire()
        if self.tokens_limiter is not None:
            await self.tokens_limiter.acquire(est_tokens)
        if self.stopped:
            raise _Stop
        if not self.budget.reserve(est_cost):
            self._stop(self._budget_message(), hard=False)
            raise _Stop
        key = request.request_hash
        self.attempts[key] = self.attempts.get(key, 0) + 1
        stats = self.stats
        stats.attempts += 1
        stats.model_calls += 1
        if self.attempts[key] > 1:
            stats.retries += 1
        stats.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                # Validated before anything else sees it: a malformed answer is retried
                # like any transient failure and never reaches the cache.
                response = checked_response(await self.provider.agenerate(request))
        except TimeoutError:
            failure: RequestFailure | None = RequestFailure(
                "timeout", f"no response within the {self.timeout_s:g} s request deadline"
            )
        except RequestFailure as exc:
            failure = exc
        else:
            failure = None
        finally:
            stats.in_flight -= 1
        if failure is not None:
            self.request_rate.observe(
                epoch,
                rate_limited=self.provider.is_rate_limit(failure),
                headers=failure.limit_headers,
            )
            self.budget.settle(est_cost, 0.0)
            if self.tokens_limiter is not None:
                self.tokens_limiter.adjust(est_tokens)
            self._on_failure(request, failure)
            raise failure
        # Takes the rate-limit headers out of the answer: they steer the pacing, and are
        # neither part of the answer nor of the cache.
        self.request_rate.observe_answer(epoch, response)
        cost = self.spec.pricing.cost(response.input_tokens, response.output_tokens)
        self.budget.settle(est_cost, cost)
        if self.tokens_limiter is not None:
            self.tokens_limiter.adjust(est_tokens - response.input_tokens - response.output_tokens)
        self.breaker.success()
        if self.cache is not None:
            # Persisted before the slot is released, so the answers not yet on disk never
            # outnumber the concurrency: a SIGKILL loses at most the requests in flight.
            await self._persist(key, response)
        return response

    async def _persist(self, key: str, response: GenerationResponse) -> None:
        assert self.cache is not None
        if self._slow_writes >= 3:
            # A slow (shared) filesystem: write from threads so the event loop keeps sending.
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self.cache.put, key, response
            )
            return
        # A local disk writes a small file in well under a millisecond; handing that to a
        # thread would cost more CPU than the write itself.
        start = time.perf_counter()
        self.cache.put(key, response)
        if time.perf_counter() - start > 0.005:
            self._slow_writes += 1

    def _on_failure(self, request: GenerationRequest, failure: RequestFailure) -> None:
        text = str(failure)
        self.last_error[request.request_hash] = text
        self.stats.last_error = text
        if self.provider.is_rate_limit(failure):
            self.stats.rate_limited += 1
        if self.provider.is_fatal(failure):
            env = self.options.api_key_env
            where = f" in ${env}" if env else ""
            self._stop(
                f"provider {self.provider.name!r} at {self.provider.endpoint} rejected the request "
                f"({text}); every further request would fail the same way, so none was sent. "
                f"Check the API key{where} and its permissions for model {self.spec.model_id!r}. "
                + self._resume_hint(),
                hard=True,
            )
        elif self.breaker.failure(text):
            self._stop(
                f"circuit breaker opened for provider {self.provider.name!r} at "
                f"{self.provider.endpoint}: {self.breaker.threshold} consecutive failed "
                f"requests (last: {text}). Check that the server is up and answering. "
                + self._resume_hint(),
                hard=True,
            )

    def _budget_message(self) -> str:
        return (
            f"spend budget of ${self.budget.limit_usd:.4f} reached: this run spent "
            f"${self.budget.run_spent_usd:.4f} and the next request could cost more than what is "
            "left, so no further request was sent (responses already paid for are kept and "
            "cached). Raise budget_usd in the run config and materialize again; cached rows "
            "cost nothing."
        )

    async def _one(self, request: GenerationRequest) -> None:
        est_tokens, est_cost = self._estimate(request)
        key = request.request_hash
        try:
            async for attempt in retrying(self.options, should_retry=self.provider.should_retry):
                with attempt:
                    response = await self._attempt(request, est_tokens, est_cost)
        except RequestFailure as failure:
            n = self.attempts.get(key, 1)
            suffix = f" (gave up after {n} attempts)" if n > 1 else ""
            self.results[key] = GenerationResponse(None, "error", error=f"{failure}{suffix}")
            self.stats.errors += 1
            return
        except _Stop:
            return  # recorded with the others left over once the run ends
        self.results[key] = response
        self.stats.generated += 1
        self.stats.input_tokens += response.input_tokens
        self.stats.output_tokens += response.output_tokens
        self.stats.cost_usd += self.spec.pricing.cost(response.input_tokens, response.output_tokens)

    # -- the run ----------------------------------------------------------------------

    async def run(self, on_progress: Callable[[], None] | None, every_s: float) -> ApiRunOutcome:
        self.request_rate = SHARED_RATES.join(self._rate_key, self._rate_ceiling)
        try:
            with contextlib.ExitStack() as stack:
                if self.controls.rate_leases and self._rate_ceiling is not None:
                    lease = stack.enter_context(
                        RateLease(self.controls.rate_leases, self._rate_key)
                    )
                    self._share_rate(lease)
                    sharing = asyncio.create_task(self._keep_sharing(lease))
                    stack.callback(sharing.cancel)
                return await self._run(on_progress, every_s)
        finally:
            SHARED_RATES.leave(self._rate_key)

    def _share_rate(self, lease: RateLease) -> None:
        """This process's share of the catalog's rate: split between the live leases."""
        assert self._rate_ceiling is not None
        self.request_rate.set_ceiling(self._rate_ceiling / lease.holders())

    async def _keep_sharing(self, lease: RateLease) -> None:
        while True:
            await asyncio.sleep(1.0)
            lease.refresh()
            self._share_rate(lease)

    async def _run(self, on_progress: Callable[[], None] | None, every_s: float) -> ApiRunOutcome:
        self._slots = PrioritySlots(self.spec.limits.concurrency)
        loop = asyncio.get_running_loop()
        cap = self.controls.partition_timeout_s
        cap_handle = None
        if cap is not None:
            cap_handle = loop.call_later(
                cap,
                lambda: self._stop(
                    f"the partition's wall-clock cap of {cap:g} s passed before every row was "
                    "answered. " + self._resume_hint(),
                    hard=True,
                ),
            )
        reporter = asyncio.create_task(self._report(on_progress, every_s)) if on_progress else None
        self._writer = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="cache-writer")
        self._tasks = [asyncio.create_task(self._one(r)) for r in self.todo]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            if cap_handle is not None:
                cap_handle.cancel()
            if reporter is not None:
                reporter.cancel()
            self._writer.shutdown(wait=True)
        self._record_leftovers()
        return ApiRunOutcome(self.stopped)

    def _record_leftovers(self) -> None:
        reason = self.stopped or "the run ended before this request was sent"
        for request in self.todo:
            key = request.request_hash
            if key in self.results:
                continue
            n = self.attempts.get(key, 0)
            if n == 0:
                error, finish = f"not attempted: {reason}", NOT_ATTEMPTED
                self.stats.not_attempted += 1
            else:
                last = self.last_error.get(key, "in flight")
                error, finish = f"interrupted after {n} attempts (last: {last}): {reason}", "error"
            self.results[key] = GenerationResponse(None, finish, error=error)
            self.stats.errors += 1

    async def _report(self, on_progress: Callable[[], None], every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            on_progress()
