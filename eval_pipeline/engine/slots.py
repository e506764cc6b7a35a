"""Bounded concurrency in which retries go ahead of first attempts.

With a plain FIFO semaphore a request that failed and waited out its backoff queues behind
every request not yet sent, so in a large partition a single retry can wait for most of
the run, and the partition's wall time becomes that of its unluckiest request. Serving
retries first keeps a retried request's delay to its own backoff.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PrioritySlots:
    """``limit`` slots; waiters with a lower ``priority`` number go first, FIFO within one."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            # Handed a slot just as the waiter was cancelled: pass it on.
            if future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():  # cancelled waiters are skipped
                future.set_result(None)
                return
        self._free += 1

    @property
    def in_use(self) -> int:
        return self.limit - self._free
