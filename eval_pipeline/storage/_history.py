"""Run history: every write of a model x dataset table kept as its own file.

Layout, beside (never inside) the tables, so ``<table>/**/*.parquet`` scans of the latest
results do not see it::

    <root>/history/<table>/dataset=<d>/model=<m>/<written at>--<run id>.parquet

``<written at>`` is the UTC write time as ``YYYYmmddTHHMMSSffffffZ``, so file names sort
in time order; ``<run id>`` is Dagster's run id when the write came from a Dagster step,
else a generated ``local-<time>-<random>`` id. One run keeps one file per table and
partition: a second write under the same run id replaces the first.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from eval_pipeline.core.errors import EvalPipelineError

HISTORY_DIR = "history"
KEEP_RUNS_ENV = "EVAL_PIPELINE_HISTORY_KEEP_RUNS"
KEEP_DAYS_ENV = "EVAL_PIPELINE_HISTORY_KEEP_DAYS"
_STAMP = "%Y%m%dT%H%M%S%fZ"
_SEPARATOR = "--"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ENTRY = re.compile(r"(?P<stamp>\d{8}T\d{12}Z)--(?P<run>[A-Za-z0-9][A-Za-z0-9._-]*)\.parquet")


class HistoryError(EvalPipelineError):
    """A run reference or a retention setting is not usable."""


@dataclass(frozen=True)
class HistoryEntry:
    """One kept write of one table's partition."""

    table: str
    dataset: str
    model: str
    run_id: str
    written_at: datetime
    path: Path

    @property
    def partition(self) -> str:
        return f"{self.dataset}|{self.model}"


def new_run_id(now: datetime | None = None) -> str:
    """A run id for a write outside Dagster: ``local-<UTC time>-<random>``."""
    now = now or datetime.now(UTC)
    return f"local-{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it can name a file, else raise naming the problem."""
    if not _RUN_ID.fullmatch(run_id) or _SEPARATOR in run_id:
        raise HistoryError(
            f"run id {run_id!r}: use letters, digits, '.', '_' and '-' (no '--'), "
            "at most 128 characters"
        )
    return run_id


def entry_name(run_id: str, written_at: datetime) -> str:
    """The file name of a history entry."""
    return f"{written_at.astimezone(UTC).strftime(_STAMP)}{_SEPARATOR}{run_id}.parquet"


def parse_entry(path: Path, table: str) -> HistoryEntry | None:
    """The entry a history file stands for, or None for a file that is not one."""
    match = _ENTRY.fullmatch(path.name)
    if match is None:
        return None
    model = path.parent.name.removeprefix("model=")
    dataset = path.parent.parent.name.removeprefix("dataset=")
    written = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
    return HistoryEntry(table, dataset, model, match["run"], written, path)


def entries_in(folder: Path, table: str) -> list[HistoryEntry]:
    """Every entry in one partition's history folder, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    entries = [parse_entry(folder / name, table) for name in names]
    return sorted((e for e in entries if e is not None), key=lambda e: (e.written_at, e.run_id))


@dataclass(frozen=True)
class Retention:
    """How much history to keep per table and partition.

    ``keep_runs``: the newest N runs (None: no limit; 0: keep no history at all).
    ``keep_days``: runs written within the last D days (None: no limit). The newest run
    is always kept, so a partition never loses its last history entry to age alone.
    """

    keep_runs: int | None = None
    keep_days: float | None = None

    @classmethod
    def from_env(cls, keep_runs: int | None = None, keep_days: float | None = None) -> Retention:
        """Explicit values win; unset ones come from the environment variables."""
        if keep_runs is None:
            keep_runs = _env_number(KEEP_RUNS_ENV, int)
        if keep_days is None:
            keep_days = _env_number(KEEP_DAYS_ENV, float)
        if keep_runs is not None and keep_runs < 0:
            raise HistoryError(f"keep_runs must be 0 or more, not {keep_runs}")
        if keep_days is not None and keep_days <= 0:
            raise HistoryError(f"keep_days must be more than 0, not {keep_days}")
        return cls(keep_runs, keep_days)

    @property
    def enabled(self) -> bool:
        return self.keep_runs != 0

    def expired(self, entries: list[HistoryEntry], now: datetime) -> list[HistoryEntry]:
        """The entries (oldest first) this retention removes."""
        if len(entries) <= 1:
            return []
        doomed: set[int] = set()
        if self.keep_runs is not None:
            doomed.update(range(0, max(0, len(entries) - self.keep_runs)))
        if self.keep_days is not None:
            cutoff = now - timedelta(days=self.keep_days)
            doomed.update(i for i, e in enumerate(entries) if e.written_at < cutoff)
        doomed.discard(len(entries) - 1)
        return [entries[i] for i in sorted(doomed)]


_Number = TypeVar("_Number", int, float)


def _env_number(name: str, kind: Callable[[str], _Number]) -> _Number | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise HistoryError(f"${name}={text!r} is not a number") from None


def parse_when(text: str) -> datetime:
    """A moment from an ISO date or time; a bare date means the end of that day (UTC).

    Raises:
        HistoryError: The text is not an ISO date or time.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise HistoryError(
            f"not an ISO date or time: {text!r} (e.g. 2026-11-01 or 2026-11-01T12:00)"
        ) from None
    if len(text.strip()) == 10:  # a date: everything written that day counts
        parsed = parsed + timedelta(days=1) - timedelta(microseconds=1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
