"""Pure validators behind the Dagster asset checks (tests call them directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from eval_pipeline.stages.generate import expand_samples
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def generations_complete(
    store: Store, dataset: str, model: str, *, per_problem: int = 1
) -> CheckOutcome:
    """Every requested sample has exactly one generation row with a completion.

    The requested samples are the first ``len(generations) / per_problem`` problems of
    the dataset, each with ``per_problem`` completions (``samples_per_problem``), so a row
    missing from the middle, a duplicate, a foreign sample id or a row without a
    completion (an error) all fail the check.
    """
    generations = store.read_optional("generations", dataset=dataset, model=model)
    if generations is None:
        return CheckOutcome(False, "no generations file")
    samples = store.read("dataset_samples", dataset=dataset)
    got = generations["sample_id"]
    requested = -(-generations.height // per_problem)  # a partial problem counts too
    known = expand_samples(samples.select("sample_id"), per_problem)["sample_id"]
    expected = known.head(requested * per_problem)
    missing = sorted(set(expected) - set(got))
    duplicates = got.filter(got.is_duplicated()).unique().sort().to_list()
    unknown = sorted(set(got) - set(known))
    empty = generations.filter(pl.col("completion").is_null())["sample_id"].to_list()
    problems = []
    if missing:
        problems.append(f"{len(missing)} samples without a row (e.g. {missing[:3]})")
    if duplicates:
        problems.append(f"{len(duplicates)} duplicated samples (e.g. {duplicates[:3]})")
    if unknown:
        problems.append(f"{len(unknown)} rows for unknown samples (e.g. {unknown[:3]})")
    if empty:
        problems.append(f"{len(empty)} rows without a completion (e.g. {empty[:3]})")
    metadata = {
        "rows": generations.height,
        "missing": len(missing),
        "duplicates": len(duplicates),
        "without_completion": len(empty),
    }
    if problems:
        return CheckOutcome(False, "; ".join(problems), metadata)
    return CheckOutcome(True, f"all {generations.height} samples have a completion", metadata)


def scores_cover_generations(store: Store, dataset: str, model: str) -> CheckOutcome:
    """Every generation has exactly one score per metric."""
    generations = store.read("generations", dataset=dataset, model=model)
    scores = store.read("scores", dataset=dataset, model=model)
    per_metric = scores.group_by("metric").agg(
        pl.len().alias("rows"), pl.col("sample_id").n_unique().alias("unique")
    )
    bad = per_metric.filter(
        (pl.col("rows") != generations.height) | (pl.col("unique") != generations.height)
    )
    if bad.height:
        return CheckOutcome(
            False, f"metrics with missing or duplicate scores: {bad['metric'].to_list()}"
        )
    return CheckOutcome(True, f"{per_metric.height} metrics x {generations.height} samples scored")
