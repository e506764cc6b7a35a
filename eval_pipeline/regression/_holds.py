"""Held cells: a regressed cell's numbers kept out of the published reports until it passes.

A cell (model x dataset) is held while its latest ``aggregates_regression`` verdict is a
failure. The reports then publish the aggregates the cell had when it last passed: the
newest entry of its ``aggregates`` run history written at or before that verdict. A held
cell that never passed (or whose passing entry the history no longer keeps) is left out.
Which cells are held is read from the Dagster instance by ``defs/holds.py``; everything
here is plain Python over the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from eval_pipeline.storage import HistoryEntry, Store

# The column the published aggregates and the leaderboard carry: True for a held cell.
HELD_COLUMN = "held"


@dataclass(frozen=True)
class HeldMetric:
    """One regressed metric of a held cell, as its failed verdict recorded it."""

    metric: str
    delta: float | None
    p_value: float | None


@dataclass(frozen=True)
class Hold:
    """A cell whose latest regression verdict failed.

    Attributes:
        dataset: The cell's dataset.
        model: The cell's model.
        baseline: The baseline the failed verdict compared with.
        metrics: The regressed metrics, with their delta and p-value.
        run_id: The run of the failed verdict.
        run_url: That run's page in the UI.
        failed_at: When the failed verdict was recorded (UTC).
        passed_at: When the cell's latest passing verdict was recorded (None: never).
    """

    dataset: str
    model: str
    baseline: str
    metrics: tuple[HeldMetric, ...]
    run_id: str
    run_url: str
    failed_at: datetime
    passed_at: datetime | None

    @property
    def partition(self) -> str:
        return f"{self.dataset}|{self.model}"


def published_entry(store: Store, hold: Hold) -> HistoryEntry | None:
    """The history entry a held cell publishes: its aggregates as they were when it passed."""
    if hold.passed_at is None:
        return None
    passed = hold.passed_at.astimezone(UTC)
    kept = [
        e for e in store.history("aggregates", hold.dataset, hold.model) if e.written_at <= passed
    ]
    return kept[-1] if kept else None


def published_aggregates(
    store: Store, aggregates: pl.DataFrame, holds: Sequence[Hold]
) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """``aggregates`` with each held cell's rows replaced by the ones it last passed with.

    Adds the Boolean column ``held``. A held cell without a passing entry has no rows.

    Returns:
        The frame, and per held partition the run id of the rows shown (None: none shown).
    """
    frame = aggregates.with_columns(pl.lit(False).alias(HELD_COLUMN))
    if not holds:
        return frame, {}
    held = pl.DataFrame(
        {"dataset": [h.dataset for h in holds], "model": [h.model for h in holds]},
        schema={"dataset": pl.String, "model": pl.String},
    )
    frame = frame.join(held, on=["dataset", "model"], how="anti")
    shown: dict[str, str | None] = {}
    parts = [frame]
    for hold in holds:
        entry = published_entry(store, hold)
        shown[hold.partition] = entry.run_id if entry else None
        if entry is None:
            continue
        rows = store.read_entry(entry).with_columns(pl.lit(True).alias(HELD_COLUMN))
        parts.append(rows.select([c for c in frame.columns if c in rows.columns]))
    return pl.concat(parts, how="diagonal_relaxed"), shown


def holds_markdown(holds: Sequence[Hold], shown: dict[str, str | None]) -> str:
    """A Markdown table of the held cells: partition, metric, delta, p-value, run, shown."""
    if not holds:
        return "No cell is held."
    lines = [
        "| partition | metric | delta | p-value | baseline | failed run | numbers shown |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for hold in holds:
        run = shown.get(hold.partition)
        published = f"last passing run `{run}`" if run else "none (left out)"
        for m in hold.metrics or (HeldMetric("*", None, None),):
            lines.append(
                f"| {hold.partition} | {m.metric} | {_fmt(m.delta, '+.3f')} | "
                f"{_fmt(m.p_value, '.2g')} | {hold.baseline} | "
                f"[{hold.run_id[:8]}]({hold.run_url}) | {published} |"
            )
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)
