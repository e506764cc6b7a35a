"""Client-side rate limits: requests and tokens per minute, paced so a server never sees a burst.

A run limited to the server's own limit must see no 429s. A bucket that starts full and
lets a minute's allowance out at once overruns a server that counts over shorter windows,
so the request limiter holds two requests (steady pacing, with room to catch up after
the event loop woke late) and the token limiter one second's worth of tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
