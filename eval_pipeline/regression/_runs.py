"""Reading "a run" for comparison: a pinned baseline, a kept run, a store, or a scores file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.core.schemas import TABLES
from eval_pipeline.regression._baselines import BaselineError, baseline_dir, load_baseline
from eval_pipeline.storage import (
    HistoryEntry,
    HistoryError,
    Store,
    conform,
    parse_when,
    with_missing_columns,
)

# References answered from the store's run history rather than from files.
RUN_PREFIX = "run:"
LATEST = "latest"
PREVIOUS = "previous"
AT_PREFIX = "@"


@dataclass(frozen=True)
class RunScores:
    """Scores to compare, with a name for the report."""

    name: str
    scores: pl.DataFrame


def is_history_reference(reference: str) -> bool:
    """Whether ``reference`` names a run of the store (``run:``, ``latest``, ``previous``, ``@``)."""
    return reference.startswith((RUN_PREFIX, AT_PREFIX)) or reference in (LATEST, PREVIOUS)


def history_entries(store: Store, reference: str, table: str = "scores") -> list[HistoryEntry]:
    """The history entries of ``table`` a run reference names, one per partition at most.

    ``run:<id>`` (a run id or a prefix naming one run), ``previous`` (each partition's run
    before its latest) or ``@<ISO date or time>`` (each partition's newest run written by
    then; a bare date means the end of that day, UTC).

    Raises:
        BaselineError: The reference is malformed or names no kept run.
    """
    partitions = store.history_partitions(table)
    chosen: list[HistoryEntry] = []
    if reference.startswith(RUN_PREFIX):
        wanted = reference.removeprefix(RUN_PREFIX)
        if not wanted:
            raise BaselineError("run: needs a run id, e.g. run:3f2a9c1e")
        matches = [e for e in store.history_entries(table) if e.run_id.startswith(wanted)]
        exact = [e for e in matches if e.run_id == wanted]
        ids = sorted({e.run_id for e in matches})
        if exact:
            matches = exact
        elif len(ids) > 1:
            raise BaselineError(
                f"run id prefix {wanted!r} is ambiguous: {', '.join(ids[:10])}"
                + (" ..." if len(ids) > 10 else "")
            )
        by_partition: dict[str, HistoryEntry] = {}
        for entry in matches:  # oldest first: the newest of a partition wins
            by_partition[entry.partition] = entry
        chosen = list(by_partition.values())
        if not chosen:
            raise BaselineError(
                f"no kept run {wanted!r} in {store.history_dir / table}; "
                "`eval-pipeline history` lists the runs"
            )
    elif reference == PREVIOUS:
        for dataset, model in partitions:
            entries = store.history(table, dataset, model)
            if len(entries) >= 2:
                chosen.append(entries[-2])
        if not chosen:
            raise BaselineError(
                f"no partition in {store.root} has a run before its latest "
                f"(history: {store.history_dir / table})"
            )
    elif reference.startswith(AT_PREFIX):
        try:
            when = parse_when(reference.removeprefix(AT_PREFIX))
        except HistoryError as exc:
            raise BaselineError(f"{reference}: {exc}") from None
        for dataset, model in partitions:
            earlier = [e for e in store.history(table, dataset, model) if e.written_at <= when]
            if earlier:
                chosen.append(earlier[-1])
        if not chosen:
            raise BaselineError(f"no run in {store.root} was written by {when.isoformat()}")
    else:
        raise BaselineError(f"{reference!r} is not a run reference")
    return sorted(chosen, key=lambda e: (e.dataset, e.model))


def _read_entries(store: Store, entries: list[HistoryEntry], table: str) -> pl.DataFrame:
    frames = [store.read_entry(e) for e in entries]
    return pl.concat(frames) if frames else pl.DataFrame(schema=TABLES[table])


def resolve_run(reference: str, root: str | Path, store: Store | None = None) -> RunScores:
    """Read the scores a reference names.

    ``reference`` is one of: ``baseline:<name>`` or a bare baseline name (a folder under
    ``<root>/baselines``); with a ``store``, a kept run: ``latest`` (the store's current
    scores), ``previous``, ``run:<id>`` or ``@<date>`` (see :func:`history_entries`);
    a store root (a directory with a ``scores/`` table), a baseline folder, or a Parquet
    file with rows of the ``scores`` table.

    Raises:
        BaselineError: Nothing readable matches the reference.
    """
    if reference.startswith("baseline:"):
        base = load_baseline(root, reference.removeprefix("baseline:"))
        return RunScores(f"baseline:{base.name}", base.scores)
    if is_history_reference(reference):
        if store is None:
            raise BaselineError(f"{reference!r} names a run of a store, but no store was given")
        if reference == LATEST:
            return RunScores(LATEST, store.scan("scores").collect())
        entries = history_entries(store, reference)
        runs = sorted({e.run_id for e in entries})
        name = reference if len(runs) != 1 or reference.startswith(RUN_PREFIX) else None
        return RunScores(
            name or f"{reference} (run:{runs[0]})", _read_entries(store, entries, "scores")
        )
    path = Path(reference)
    if path.is_file():
        try:
            return RunScores(
                reference, conform("scores", with_missing_columns("scores", pl.read_parquet(path)))
            )
        except Exception as exc:
            raise BaselineError(f"{reference}: not a scores Parquet file ({exc})") from exc
    if path.is_dir() and (path / "baseline.json").exists():
        base = load_baseline(path.parent.parent, path.name)
        return RunScores(f"baseline:{base.name}", base.scores)
    if path.is_dir() and (path / "scores").is_dir():
        scores = Store(path).scan("scores").collect()
        return RunScores(str(path), scores)
    if baseline_dir(root, reference).exists():
        base = load_baseline(root, reference)
        return RunScores(f"baseline:{base.name}", base.scores)
    raise BaselineError(
        f"cannot read {reference!r}: expected baseline:<name>, a baseline name, run:<id>, "
        "latest, previous, @<date>, a store directory (with scores/) or a scores Parquet file"
    )
