"""A spend budget per run: no request is sent that could take spending past the limit.

Each request reserves its worst-case cost (estimated input tokens plus ``max_tokens`` of
output, at the catalog's prices) before it is sent and settles at its real cost when it
returns, so concurrent requests together can not overshoot. Failed requests cost nothing
(the APIs do not bill errors). Responses already paid for are kept and cached.
"""

from __future__ import annotations


class SpendBudget:
    """Reservations against ``limit_usd`` (``None``: unlimited)."""

    def __init__(self, limit_usd: float | None):
        if limit_usd is not None and limit_usd < 0:
            raise ValueError("limit_usd must not be negative")
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.exhausted = False

    def reserve(self, cost_usd: float) -> bool:
        """Reserve ``cost_usd`` for a request about to be sent; False if it does not fit."""
        if self.limit_usd is None:
            self.reserved_usd += cost_usd
            return True
        if self.exhausted or self.spent_usd + self.reserved_usd + cost_usd > self.limit_usd:
            self.exhausted = True
            return False
        self.reserved_usd += cost_usd
        return True

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the request really cost (0 for a failure)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.spent_usd += actual_usd
