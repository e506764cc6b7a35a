"""Client-side rate limits: requests and tokens per minute, paced so a server never sees a burst.

A run limited to the server's own limit must see no 429s. A bucket that starts full and
lets a minute's allowance out at once overruns a server that counts over shorter windows,
so the request limiter holds two requests (steady pacing, with room to catch up after
the event loop woke late) and the token limiter one second's worth of tokens.

The catalog's requests per minute is an upper bound, not a promise: a server (an account
tier, a proxy) may allow less. :class:`AdaptiveRate` paces requests at the catalog's limit,
lowers the rate to what the server accepts when it answers 429, takes a lower limit the
server states in its rate-limit headers, and climbs back slowly.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from eval_pipeline.core.types import GenerationResponse


class RateLimiter:
    """A token bucket refilled at ``rate_per_s`` and holding at most ``burst`` units.

    Waiters are served first come, first served (they queue on one lock), so a request that
    waited longest goes next. A unit count larger than ``burst`` is let through when the
    bucket is full and leaves it in debt, so one oversized request cannot block forever.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate = rate_per_s
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._level = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    @classmethod
    def per_minute(
        cls, per_minute: float, burst_s: float | None = None, burst: float = 2.0
    ) -> RateLimiter:
        """A limiter for ``per_minute`` units holding ``burst`` units (or ``burst_s`` seconds)."""
        rate = per_minute / 60.0
        return cls(rate, burst=rate * burst_s if burst_s else burst)

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, units: float = 1.0) -> None:
        """Wait until ``units`` may be spent, then spend them."""
        async with self._lock:
            while True:
                self._refill()
                needed = min(units, self.burst)
                # The tolerance absorbs float rounding, which could otherwise ask for waits
                # too short to move the clock.
                if self._level >= needed - 1e-9:
                    self._level -= units
                    return
                wait = (needed - self._level) / self.rate
                self.waited_s += wait
                await self._sleep(wait)

    def adjust(self, units: float) -> None:
        """Give back (negative: take more) units once a request's real size is known."""
        self._refill()
        self._level = min(self.burst, self._level + units)


# -- adaptive request rate ------------------------------------------------------------

# Both providers document their request limit per minute.
_LIMIT_WINDOW_S = 60.0
_LIMIT_HEADERS = {
    "limit": ("x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit"),
    "remaining": ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"),
    "reset": ("x-ratelimit-reset-requests", "anthropic-ratelimit-requests-reset"),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True)
class ServerLimits:
    """What a server said about its request limit in its rate-limit headers.

    Attributes:
        limit_per_min: Requests allowed per minute (``x-ratelimit-limit-requests``,
            ``anthropic-ratelimit-requests-limit``).
        remaining: Requests left in the current window.
        reset_s: Seconds until the window is full again.
    """

    limit_per_min: float | None = None
    remaining: float | None = None
    reset_s: float | None = None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _reset_seconds(raw: str | None, now_epoch_s: float) -> float | None:
    """OpenAI's durations (``6m0s``, ``20ms``), plain seconds, or Anthropic's RFC 3339 time."""
    if not raw:
        return None
    plain = _number(raw)
    if plain is not None:
        return plain
    parts = _DURATION_PART.findall(raw)
    if parts and "".join(n + u for n, u in parts) == raw.strip():
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_epoch_s)


def parse_limit_headers(
    headers: Mapping[str, str] | None, now_epoch_s: float | None = None
) -> ServerLimits | None:
    """The request limit from OpenAI's or Anthropic's rate-limit headers (None: none sent).

    Header names are matched case-insensitively; values that do not parse are ignored.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}

    def first(field: str) -> str | None:
        return next((lowered[n] for n in _LIMIT_HEADERS[field] if n in lowered), None)

    limits = ServerLimits(
        limit_per_min=_number(first("limit")),
        remaining=_number(first("remaining")),
        reset_s=_reset_seconds(first("reset"), time.time() if now_epoch_s is None else now_epoch_s),
    )
    return None if limits == ServerLimits() else limits


@dataclass
class _Window:
    """Responses counted from the first 429 of an epoch, until there is enough to decide."""

    start: float
    responses: int = 0
    limited: int = 0
    sends: int = 0


@dataclass(frozen=True)
class _Cut:
    """A decrease, remembered so a decrease that did not help can be undone."""

    epoch: int  # the epoch the decrease started
    rate: float  # the rate it set
    share: float  # the share of 429s that led to it
    before: tuple[float | None, float]  # (rate, since) before it


class AdaptiveRate:
    """The request rate sent to one server: paced, lowered on 429s, raised again slowly.

    The rate starts at ``ceiling_per_s`` (the catalog's limit; ``None`` starts unlimited)
    and never goes above it, nor above a limit the server states in its rate-limit headers.

    Decrease. The first 429 of an *epoch* (the time since the last change of rate) opens
    a measurement window; once it holds ``window_responses`` answers (or ``window_limited``
    429s, or ``window_s`` seconds with a few answers), the new rate is what the server
    accepted over the window, ``send rate x (1 - share of 429s)``, less a margin: for a
    server enforcing a limit that is its limit, so one decrease settles near it instead
    of halving again and again. A decrease is at least ``1 - max_cut`` of the rate it
    replaces and at most ``margin`` of it. 429s of requests sent before the last change
    (earlier epochs) say nothing about the new rate and are ignored.

    Recovery. From a decrease on, the rate grows linearly by ``recovery_per_s`` of the
    decreased rate each second (1%/s: from 0.95 of a limit back to it in about five
    seconds), up to the ceiling; a server that raised its limit, or a limit learned from
    a transient overload, is regained gradually, and the next overshoot costs a 429 or two.

    429s that do not come from the request rate (a server that rejects a share of requests
    whatever the rate) would otherwise drive the rate down step by step: when a decrease
    left the share of 429s where it was, it is undone and no decrease is made for
    ``hold_s`` seconds.

    Pacing is a token bucket ``burst`` requests deep, guarded by a thread lock rather than
    an asyncio one: runs on different event loops in one process (two partitions against
    one server) share one instance through :data:`SHARED_RATES`.
    """

    def __init__(
        self,
        ceiling_per_s: float | None,
        *,
        burst: float = 2.0,
        margin: float = 0.95,
        max_cut: float = 0.6,
        recovery_per_s: float = 0.01,
        window_responses: int = 32,
        window_limited: int = 8,
        window_s: float = 5.0,
        hold_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if ceiling_per_s is not None and ceiling_per_s <= 0:
            raise ValueError("ceiling_per_s must be positive")
        self.ceiling = ceiling_per_s
        self.server_ceiling: float | None = None
        self.burst = max(1.0, burst)
        self.margin = margin
        self.max_cut = max_cut
        self.recovery_per_s = recovery_per_s
        self.window_responses = window_responses
        self.window_limited = window_limited
        self.window_s = window_s
        self.hold_s = hold_s
        self._clock = clock
        self._lock = threading.Lock()
        # The rate set by the last decrease and when (None: no decrease in force).
        self._base: float | None = None
        self._since = 0.0
        self.epoch = 0
        self._window: _Window | None = None
        self._last_cut: _Cut | None = None
        self._hold_until = -math.inf
        self._pause_until = -math.inf
        # The request bucket: ``burst`` deep, refilled at the rate in force.
        self._level = self.burst
        self._stamp = clock()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.decreases = 0
        self.reverts = 0

    # -- the rate ---------------------------------------------------------------------

    @property
    def cap(self) -> float | None:
        """The ceiling in force: the catalog's limit or the server's, whichever is lower."""
        caps = [c for c in (self.ceiling, self.server_ceiling) if c is not None]
        return min(caps) if caps else None

    def rate(self, now: float | None = None) -> float | None:
        """Requests per second allowed now (None: unlimited)."""
        with self._lock:
            return self._rate(self._clock() if now is None else now)

    def _rate(self, now: float) -> float | None:
        cap = self.cap
        if self._base is None:
            return cap
        grown = self._base * (1.0 + self.recovery_per_s * max(0.0, now - self._since))
        if cap is not None and grown >= cap:
            # Fully recovered: forget the decrease, so a later cap change applies as is.
            self._base = None
            return cap
        return grown

    def set_ceiling(self, ceiling_per_s: float | None) -> None:
        """Change the catalog's limit (a run joining with a newer catalog)."""
        with self._lock:
            self.ceiling = ceiling_per_s

    # -- sending ----------------------------------------------------------------------

    def try_reserve(self) -> tuple[float, int]:
        """Book a request now if the rate allows: ``(0, epoch)``, else ``(seconds to wait, -1)``.

        Nothing is booked ahead: a request that has to wait asks again after the wait, so
        a lowered rate applies to every request not yet sent.
        """
        with self._lock:
            now = self._clock()
            rate = self._rate(now)
            # Refilled at the rate in force now, so a lowered rate slows the next request.
            elapsed = max(0.0, now - self._stamp)
            self._level = (
                self.burst if rate is None else min(self.burst, self._level + elapsed * rate)
            )
            self._stamp = now
            wait = max(0.0, self._pause_until - now)
            if rate is not None and self._level < 1.0 - 1e-9:
                wait = max(wait, (1.0 - self._level) / rate)
            # The tolerance absorbs float rounding, which could otherwise ask for waits too
            # short to move the clock.
            if wait > 1e-9:
                return wait, -1
            self._level -= 1.0
            if self._window is not None:
                self._window.sends += 1
            return 0.0, self.epoch

    async def acquire(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> int:
        """Wait until a request may be sent; returns the epoch to report its answer with.

        The waiters of one event loop queue first come, first served; each loop's first
        waiter asks the shared schedule.
        """
        with self._lock:
            loop = asyncio.get_running_loop()
            queue = self._queues.get(loop)
            if queue is None:
                queue = self._queues[loop] = asyncio.Lock()
        async with queue:
            while True:
                wait, epoch = self.try_reserve()
                if wait <= 0:
                    return epoch
                await sleep(wait)

    def on_response(
        self,
        epoch: int,
        *,
        rate_limited: bool,
        limits: ServerLimits | None = None,
    ) -> None:
        """Report the answer to a request booked in ``epoch``: a 429 or not, and its headers."""
        with self._lock:
            now = self._clock()
            if limits is not None:
                self._apply(limits, now)
            if epoch != self.epoch:
                return  # sent before the rate changed: says nothing about the new rate
            window = self._window
            if window is None:
                if rate_limited and now >= self._hold_until:
                    # The 429 that opens the window is not counted in it: a window that
                    # always starts with one would overstate the share.
                    self._window = _Window(start=now)
                return
            window.responses += 1
            window.limited += rate_limited
            enough = (
                window.responses >= self.window_responses
                or window.limited >= self.window_limited
                or (now - window.start >= self.window_s and window.responses >= 4)
            )
            if enough:
                self._decide(window, now)

    def observe(
        self, epoch: int, *, rate_limited: bool, headers: Mapping[str, str] | None = None
    ) -> None:
        """:meth:`on_response` with the answer's raw rate-limit headers."""
        self.on_response(epoch, rate_limited=rate_limited, limits=parse_limit_headers(headers))

    def observe_answer(self, epoch: int, response: GenerationResponse) -> None:
        """Report an answer with its rate-limit headers (``response.limit_headers``)."""
        self.observe(epoch, rate_limited=False, headers=response.limit_headers)

    def _apply(self, limits: ServerLimits, now: float) -> None:
        if limits.limit_per_min:
            self.server_ceiling = limits.limit_per_min / _LIMIT_WINDOW_S
        if limits.remaining is not None and limits.remaining < 1:
            # The window is spent: hold sends until the next request is allowed (a full
            # reset would waste the requests the server frees before it).
            wait = _LIMIT_WINDOW_S / limits.limit_per_min if limits.limit_per_min else None
            if limits.reset_s is not None:
                wait = limits.reset_s if wait is None else min(wait, limits.reset_s)
            if wait:
                self._pause_until = max(self._pause_until, now + min(wait, _LIMIT_WINDOW_S))

    def _decide(self, window: _Window, now: float) -> None:
        self._window = None
        span = max(now - window.start, 1e-3)
        share = window.limited / window.responses
        current = self._rate(now)
        sent = window.sends / span
        # The rate the window ran at: what was sent, unless the limiter held it lower.
        if current is None:
            basis = sent
        elif window.sends:
            basis = min(current, sent)
        else:
            basis = current
        cut = self._last_cut
        if (
            cut is not None
            and cut.epoch == self.epoch
            and current is not None
            and current <= cut.rate * 1.02
            and sent >= 0.8 * cut.rate
            and window.limited >= 2
            and share >= 0.5 * cut.share
        ):
            # The lower rate was sent and drew the same share of 429s: they do not come
            # from the rate. Undo the decrease and stop decreasing for a while.
            self._base, self._since = cut.before
            self._last_cut = None
            self._hold_until = now + self.hold_s
            self.epoch += 1
            self.reverts += 1
            return
        if not basis:
            return
        target = basis * (1.0 - share) * self.margin
        target = min(max(target, basis * (1.0 - self.max_cut)), basis * self.margin)
        self._last_cut = _Cut(self.epoch + 1, target, share, (self._base, self._since))
        self._base, self._since = target, now
        self.epoch += 1
        self.decreases += 1


class SharedRates:
    """One :class:`AdaptiveRate` per server, shared by the runs that use it at the same time.

    Runs join with :meth:`join` and leave with :meth:`leave`; the entry is dropped when the
    last run leaves, so a later run starts from the catalog's limit again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[AdaptiveRate, int]] = {}

    def join(self, key: Hashable, ceiling_per_s: float | None) -> AdaptiveRate:
        with self._lock:
            rate, users = self._entries.get(key, (None, 0))
            if rate is None:
                rate = AdaptiveRate(ceiling_per_s)
            else:
                rate.set_ceiling(ceiling_per_s)
            self._entries[key] = (rate, users + 1)
            return rate

    def leave(self, key: Hashable) -> None:
        with self._lock:
            rate, users = self._entries.get(key, (None, 0))
            if rate is None:
                return
            if users <= 1:
                del self._entries[key]
            else:
                self._entries[key] = (rate, users - 1)


SHARED_RATES = SharedRates()
