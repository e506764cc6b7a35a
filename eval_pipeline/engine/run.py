"""Runs a list of requests through a provider, reusing cached responses."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.engine.cache import ResponseCache
from eval_pipeline.providers import Provider, RequestFailure, checked_response

if TYPE_CHECKING:
    from eval_pipeline.engine.api import RunControls


@dataclass
class Progress:
    """A progress report: sent every ``progress_every_s`` seconds and at the end."""

    done: int
    total: int
    cached: int
    errors: int
    elapsed_s: float
    output_tokens: int
    cost_usd: float
    # Filled in by the async path for API providers.
    input_tokens: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    last_error: str | None = None
    # Cache entries that did not read back as an answer: sent again, their entries replaced.
    cache_damaged: int = 0
    # ``elapsed_s`` when a request last completed (None: the caller does not track it).
    # With it, a partition stuck on its last requests reads as waiting, not "ETA 1s".
    last_done_s: float | None = None

    # A stall is reported only after this long without a completion, so the normal
    # gaps between completions do not flicker between an ETA and "waiting".
    STALL_AFTER_S = 5.0

    @property
    def rate(self) -> float:
        """Generated (not cached) requests per second."""
        return (self.done - self.cached) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    @property
    def stalled_s(self) -> float | None:
        """Seconds without a completion, when that is longer than the ETA allowed, else None.

        The ETA made at the last completion has passed (or nothing has completed at all)
        and :attr:`STALL_AFTER_S` has gone by: the run is waiting on its in-flight
        requests, and an ETA would be a guess that keeps saying "1s".
        """
        if self.last_done_s is None or self.done >= self.total:
            return None
        idle = self.elapsed_s - self.last_done_s
        if idle < self.STALL_AFTER_S:
            return None
        generated = self.done - self.cached
        if generated <= 0 or self.last_done_s <= 0:
            return idle
        rate_then = generated / self.last_done_s
        eta_then = (self.total - self.done) / rate_then
        return idle if idle > eta_then else None

    def message(self) -> str:
        """One progress line: counts, rate and ETA, or how long it has waited when stuck."""
        stalled = self.stalled_s
        if stalled is not None:
            waiting = self.in_flight or (self.total - self.done)
            timing = f"waiting on {waiting} requests in flight for {stalled:.0f}s"
        else:
            eta = "?" if self.eta_s is None else f"{self.eta_s:.0f}s"
            timing = f"{self.rate:.2f} req/s, ETA {eta}"
        text = (
            f"{self.done}/{self.total} requests ({self.cached} cached, {self.errors} errors), "
            f"{timing}, {self.output_tokens} output tokens, ${self.cost_usd:.4f}"
        )
        if self.attempts:
            # Retries and the last error make a struggling run visibly different from a hung one.
            text += (
                f"; {self.in_flight} in flight, {self.attempts} HTTP requests, "
                f"{self.retries} retries ({self.rate_limited} rate-limited)"
            )
            if self.last_error:
                text += f", last error: {self.last_error[:160]}"
        return text


@dataclass
class RunStats:
    total: int = 0
    cached: int = 0
    generated: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    model_calls: int = 0
    # API providers: HTTP requests sent (retries included), rows never sent, and live state.
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    not_attempted: int = 0
    in_flight: int = 0
    last_error: str | None = None
    # The batch route: provider batch ids, submission rounds, requests sent again,
    # seconds waited for batches, and the worst case counted against the budget.
    route: str = "online"
    batch_ids: list[str] = field(default_factory=list)
    batch_rounds: int = 0
    batch_retried: int = 0
    batch_waited_s: float = 0.0
    batch_worst_usd: float = 0.0
    # Cache entries that did not read back as an answer: sent again, their entries replaced.
    cache_damaged: int = 0


@dataclass
class EngineResult:
    """Responses in request order, whether each came from the cache, and totals."""

    responses: list[GenerationResponse]
    cached: list[bool]
    stats: RunStats = field(default_factory=RunStats)
    # Why an API run stopped before answering every row (None: it did not).
    stopped: str | None = None


def run_requests(
    provider: Provider,
    spec: ModelSpec,
    requests: Sequence[GenerationRequest],
    cache: ResponseCache | None,
    *,
    use_cache: bool = True,
    progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 10.0,
    controls: RunControls | None = None,
) -> EngineResult:
    """Answer every request: from the cache when possible, else from the provider.

    Batch providers get the requests ``provider.batch_size`` at a time; successful
    responses are written to the cache as each batch finishes. Providers whose
    capabilities say ``async_generate`` (the HTTP APIs) go through the async path of
    :mod:`eval_pipeline.engine.api`: concurrency, rate limits, retries, the circuit breaker
    and the budget of ``controls``, with each response cached as it arrives. Either way a run that dies keeps everything answered before it, and identical
    requests (same hash) are sent once.
    """
    _check_choices_supported(provider, spec, requests)
    start = time.perf_counter()
    stats = RunStats(total=len(requests))
    by_hash: dict[str, GenerationResponse] = {}
    if cache is not None and use_cache:
        damaged_before = len(cache.damaged)
        by_hash = _cached_responses(requests, cache)
        stats.cache_damaged = len(cache.damaged) - damaged_before
    from_cache = set(by_hash)
    todo = _distinct_unanswered(requests, by_hash)

    # When the answered count last grew, as seen by the progress reports (so to within
    # one reporting interval): a partition stuck on its last requests then reads as waiting.
    last_growth = {"done": -1, "at_s": 0.0}

    def report() -> None:
        if progress is None:
            return
        done = sum(1 for r in requests if r.request_hash in by_hash)
        elapsed = time.perf_counter() - start
        if done > last_growth["done"]:
            last_growth.update(done=done, at_s=elapsed)
        cached = sum(1 for r in requests if r.request_hash in from_cache)
        progress(_progress_of(stats, done, len(requests), cached, elapsed, last_growth["at_s"]))

    def finish(stopped: str | None) -> EngineResult:
        stats.cached = sum(1 for r in requests if r.request_hash in from_cache)
        stats.wall_s = time.perf_counter() - start
        report()
        return EngineResult(
            responses=[by_hash[r.request_hash] for r in requests],
            cached=[r.request_hash in from_cache for r in requests],
            stats=stats,
            stopped=stopped,
        )

    route = controls.route if controls is not None and controls.route else spec.route
    if route == "batch" and provider.capabilities.async_generate:
        from eval_pipeline.engine.batch import run_batch_route

        stats.route = "batch"
        stopped = run_batch_route(provider, spec, todo, cache, stats, by_hash, controls, report)
        return finish(stopped)

    if provider.capabilities.async_generate:
        from eval_pipeline.engine.api import run_api_requests

        outcome = run_api_requests(
            provider,
            spec,
            todo,
            cache,
            stats,
            by_hash,
            controls=controls,
            on_progress=report if progress is not None else None,
            progress_every_s=progress_every_s,
        )
        return finish(outcome.stopped)

    _generate_in_batches(provider, spec, todo, cache, stats, by_hash, report, progress_every_s)
    return finish(None)


def _check_choices_supported(
    provider: Provider, spec: ModelSpec, requests: Sequence[GenerationRequest]
) -> None:
    """Refuse requests with choices for a provider that cannot decode them."""
    if any(r.choices for r in requests) and not provider.capabilities.choices:
        raise EvalPipelineError(
            f"model {spec.slug!r}: provider {spec.provider!r} does not implement choice "
            "decoding (requests with choices); ask it for free-form output instead"
        )


def _cached_responses(
    requests: Sequence[GenerationRequest], cache: ResponseCache
) -> dict[str, GenerationResponse]:
    """The cached response of each request that has one, by request hash."""
    by_hash: dict[str, GenerationResponse] = {}
    for r in requests:
        if r.request_hash not in by_hash:
            hit = cache.get(r.request_hash)
            if hit is not None:
                by_hash[r.request_hash] = hit
    return by_hash


def _distinct_unanswered(
    requests: Sequence[GenerationRequest], by_hash: dict[str, GenerationResponse]
) -> list[GenerationRequest]:
    """The requests not answered yet, each hash once, in their order."""
    todo: list[GenerationRequest] = []
    queued: set[str] = set()
    for r in requests:
        if r.request_hash not in by_hash and r.request_hash not in queued:
            todo.append(r)
            queued.add(r.request_hash)
    return todo


def _progress_of(
    stats: RunStats, done: int, total: int, cached: int, elapsed_s: float, last_done_s: float
) -> Progress:
    """A progress report from the run's counters."""
    return Progress(
        done=done,
        total=total,
        cached=cached,
        errors=stats.errors,
        elapsed_s=elapsed_s,
        last_done_s=last_done_s,
        output_tokens=stats.output_tokens,
        cost_usd=stats.cost_usd,
        input_tokens=stats.input_tokens,
        attempts=stats.attempts,
        retries=stats.retries,
        rate_limited=stats.rate_limited,
        in_flight=stats.in_flight,
        last_error=stats.last_error,
    )


def _generate_in_batches(
    provider: Provider,
    spec: ModelSpec,
    todo: list[GenerationRequest],
    cache: ResponseCache | None,
    stats: RunStats,
    by_hash: dict[str, GenerationResponse],
    report: Callable[[], None],
    progress_every_s: float,
) -> None:
    """Answer ``todo`` ``provider.batch_size`` at a time, caching each successful response."""
    last_report = time.perf_counter()
    batch_size = max(1, provider.batch_size)
    for offset in range(0, len(todo), batch_size):
        batch = todo[offset : offset + batch_size]
        responses = provider.generate(batch)
        if len(responses) != len(batch):
            raise RuntimeError(
                f"provider {provider.name} returned {len(responses)} responses for {len(batch)} requests"
            )
        stats.model_calls += len(batch)
        for request, answer in zip(batch, responses, strict=True):
            # A local backend's answer passes the same gate as an API's before the cache.
            try:
                response = checked_response(answer)
            except RequestFailure as failure:
                response = GenerationResponse(None, "error", error=str(failure))
            by_hash[request.request_hash] = response
            stats.input_tokens += response.input_tokens
            stats.output_tokens += response.output_tokens
            stats.cost_usd += spec.pricing.cost(response.input_tokens, response.output_tokens)
            if response.ok:
                stats.generated += 1
                if cache is not None:
                    cache.put(request.request_hash, response)
            else:
                stats.errors += 1
        if time.perf_counter() - last_report >= progress_every_s:
            report()
            last_report = time.perf_counter()
