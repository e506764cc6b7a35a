"""A spend budget per run: no request is sent that could take spending past the limit.

Each request reserves its worst-case cost (estimated input tokens plus ``max_tokens`` of
output, at the catalog's prices) before it is sent and settles at its real cost when it
returns, so concurrent requests together can not overshoot. Failed requests cost nothing
(the APIs do not bill errors). Responses already paid for are kept and cached.

With a ledger file the budget is the whole run's: every partition, judge and SLURM job of
the run reserves against the same file (locked for each update, so processes on one
machine or on a shared filesystem see each other's spending).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Any: the shared budget file's JSON document.
from typing import Any


class SpendBudget:
    """Reservations against ``limit_usd`` (``None``: unlimited), alone or through a ledger."""

    def __init__(self, limit_usd: float | None, ledger: str | os.PathLike[str] | None = None):
        if limit_usd is not None and limit_usd < 0:
            raise ValueError("limit_usd must not be negative")
        self.limit_usd = limit_usd
        self.ledger = Path(ledger) if ledger is not None and limit_usd is not None else None
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.exhausted = False

    @contextmanager
    def _shared(self) -> Iterator[dict[str, Any]]:
        """The ledger's totals, locked for the block and written back after it."""
        assert self.ledger is not None
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ledger, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                text = fh.read()
                state = (
                    json.loads(text) if text.strip() else {"spent_usd": 0.0, "reserved_usd": 0.0}
                )
                yield state
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(state))
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def run_spent_usd(self) -> float:
        """What the whole run has spent (this budget's own spending without a ledger)."""
        if self.ledger is None or not self.ledger.exists():
            return self.spent_usd
        with self._shared() as state:
            return float(state["spent_usd"])

    def reserve(self, cost_usd: float) -> bool:
        """Reserve ``cost_usd`` for a request about to be sent; False if it does not fit."""
        if self.limit_usd is None:
            self.reserved_usd += cost_usd
            return True
        if self.exhausted:
            return False
        if self.ledger is not None:
            with self._shared() as state:
                if state["spent_usd"] + state["reserved_usd"] + cost_usd > self.limit_usd:
                    self.exhausted = True
                    return False
                state["reserved_usd"] += cost_usd
        elif self.spent_usd + self.reserved_usd + cost_usd > self.limit_usd:
            self.exhausted = True
            return False
        self.reserved_usd += cost_usd
        return True

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the request really cost (0 for a failure)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.spent_usd += actual_usd
        if self.ledger is not None:
            with self._shared() as state:
                state["reserved_usd"] = max(0.0, state["reserved_usd"] - reserved_usd)
                state["spent_usd"] += actual_usd
