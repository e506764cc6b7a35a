"""Reading "a run" for comparison: a pinned baseline, a store, or a scores file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.regression._baselines import BaselineError, baseline_dir, load_baseline
from eval_pipeline.storage import Store, conform


@dataclass(frozen=True)
class RunScores:
    """Scores to compare, with a name for the report."""

    name: str
    scores: pl.DataFrame


def resolve_run(reference: str, root: str | Path) -> RunScores:
    """Read the scores a reference names.

    ``reference`` is one of: ``baseline:<name>`` or a bare baseline name (a folder under
    ``<root>/baselines``), a store root (a directory with a ``scores/`` table), a
    baseline folder, or a Parquet file with rows of the ``scores`` table.

    Raises:
        BaselineError: Nothing readable matches the reference.
    """
    if reference.startswith("baseline:"):
        base = load_baseline(root, reference.removeprefix("baseline:"))
        return RunScores(f"baseline:{base.name}", base.scores)
    path = Path(reference)
    if path.is_file():
        try:
            return RunScores(reference, conform("scores", pl.read_parquet(path)))
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
        f"cannot read {reference!r}: expected baseline:<name>, a baseline name, a store "
        "directory (with scores/) or a scores Parquet file"
    )
