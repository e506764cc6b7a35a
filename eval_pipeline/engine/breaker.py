"""A circuit breaker per provider: stop sending after K consecutive failed attempts.

A dead or broken server otherwise turns a partition into thousands of doomed requests,
each retried with backoff, which looks like a hang. Any success closes the count again,
so scattered transient faults never open it. Once open it stays open for the rest of the
partition: the run records what is left as not attempted and fails with how to resume.
"""

from __future__ import annotations


class CircuitBreaker:
    """Counts consecutive failures; ``is_open`` once ``threshold`` is reached."""

    def __init__(self, threshold: int):
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.consecutive = 0
        self.is_open = False
        self.last_failure: str | None = None

    def success(self) -> None:
        if not self.is_open:
            self.consecutive = 0

    def failure(self, description: str) -> bool:
        """Record a failure; True when this one opened the breaker."""
        self.last_failure = description
        self.consecutive += 1
        if not self.is_open and self.consecutive >= self.threshold:
            self.is_open = True
            return True
        return False
