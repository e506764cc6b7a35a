"""Pure validators behind the Dagster asset checks (tests call them directly)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Any: check metadata (any value Dagster records).
from typing import Any, cast

import polars as pl

from eval_pipeline.core.keys import PROBLEM_SEPARATOR
from eval_pipeline.stages.generate import expand_samples
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def generations_complete(
    store: Store, dataset: str, model: str, *, per_problem: int = 1, per_task: bool = False
) -> CheckOutcome:
    """Every requested sample has exactly one generation row with a completion.

    The requested samples are the first ``len(generations) / per_problem`` problems of
    the dataset, each with ``per_problem`` completions (``samples_per_problem``, an
    lm-eval task's ``repeats``), so a row missing from the middle, a duplicate, a foreign
    sample id or a row without a completion (an error) all fail the check. With
    ``per_task`` (an lm-eval group, whose sample ids read ``<task>/<doc id>`` and whose
    limit applies to each task) they are the first problems of every task, as many as
    the task with the most rows has.
    """
    generations = store.read_optional("generations", dataset=dataset, model=model)
    if generations is None:
        return CheckOutcome(False, "no generations file")
    samples = store.read("dataset_samples", dataset=dataset)
    got = generations["sample_id"]
    problems = samples.select("sample_id")
    known = expand_samples(problems, per_problem)["sample_id"]
    if per_task:
        task = pl.col("sample_id").str.split("/").list.first()
        rows = generations.group_by(task.alias("task")).agg(pl.len().alias("rows"))
        requested = -(-(cast("int | None", rows["rows"].max()) or 0) // per_problem)
        problems = problems.filter(pl.int_range(pl.len()).over(task) < requested)
    else:
        requested = -(-generations.height // per_problem)  # a partial problem counts too
        problems = problems.head(requested)
    expected = expand_samples(problems, per_problem)["sample_id"]
    missing = sorted(set(expected) - set(got))
    duplicates = got.filter(got.is_duplicated()).unique().sort().to_list()
    unknown = sorted(set(got) - set(known))
    empty = generations.filter(pl.col("completion").is_null())["sample_id"].to_list()
    found: list[str] = []
    if missing:
        found.append(f"{len(missing)} samples without a row (e.g. {missing[:3]})")
    if duplicates:
        found.append(f"{len(duplicates)} duplicated samples (e.g. {duplicates[:3]})")
    if unknown:
        found.append(f"{len(unknown)} rows for unknown samples (e.g. {unknown[:3]})")
    if empty:
        found.append(f"{len(empty)} rows without a completion (e.g. {empty[:3]})")
    metadata = {
        "rows": generations.height,
        "missing": len(missing),
        "duplicates": len(duplicates),
        "without_completion": len(empty),
    }
    if found:
        return CheckOutcome(False, "; ".join(found), metadata)
    return CheckOutcome(True, f"all {generations.height} samples have a completion", metadata)


def scores_cover_generations(
    store: Store, dataset: str, model: str, *, by_problem: bool = False
) -> CheckOutcome:
    """Every generation has exactly one score per metric.

    ``by_problem`` (lm-eval datasets, whose metrics read all of a document's samples at
    once): every problem, ``<problem>#<i>`` rows together, has one score per metric.
    """
    generations = store.read("generations", dataset=dataset, model=model)
    scores = store.read("scores", dataset=dataset, model=model)
    ids = generations["sample_id"]
    if by_problem:
        ids = ids.str.split(PROBLEM_SEPARATOR).list.first()
    expected = ids.n_unique()
    per_metric = scores.group_by("metric").agg(
        pl.len().alias("rows"), pl.col("sample_id").n_unique().alias("unique")
    )
    bad = per_metric.filter((pl.col("rows") != expected) | (pl.col("unique") != expected))
    if bad.height:
        return CheckOutcome(
            False, f"metrics with missing or duplicate scores: {bad['metric'].to_list()}"
        )
    return CheckOutcome(True, f"{per_metric.height} metrics x {expected} samples scored")
