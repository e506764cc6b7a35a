"""The judge stage: one judge rates one partition's completions and writes ``judgements``.

This is the only place a judge rates generations. It runs inside the judge task (the
Dagster ``judgements`` step's inline runner, or the judge's SLURM job), never inside the
score stage: ``scores`` reads the rows written here the way it reads ``generations``
(:func:`eval_pipeline.judge.judge_scores`).

Several judges may rate the same partition (a panel), each in its own task and perhaps
on another machine; each replaces only its own rows of the partition's file, under a lock
beside that file, so neither loses the other's verdicts.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import code_version, content_hash
from eval_pipeline.core.schemas import JUDGEMENTS
from eval_pipeline.engine import RunControls, RunStats
from eval_pipeline.judge._calibration_store import load_calibration
from eval_pipeline.judge._call import items_from_frame, run_judge
from eval_pipeline.judge._rubrics import JUDGE_SCORER, JudgeParams, rubric_prompt
from eval_pipeline.providers import Provider
from eval_pipeline.storage import Store

RUBRIC = "rubric"  # prompt_kind of a pointwise rubric verdict


def judge_identity(catalog: Catalog, judge: str) -> str:
    """A short hash of what makes ``judge`` answer as it does (see ``ModelSpec.identity``)."""
    return content_hash(catalog.model(judge).identity(), 16)


@dataclass
class JudgedPartition:
    """What one judge wrote for one partition: its rows and how the calls went."""

    rows: pl.DataFrame
    stats: RunStats = field(default_factory=RunStats)


def judge_frame(
    catalog: Catalog,
    store: Store,
    judge: str,
    model: str,
    dataset: str,
    frame: pl.DataFrame,
    *,
    provider: Provider | None = None,
    controls: RunControls | None = None,
) -> JudgedPartition:
    """Rate every completion of ``frame`` on each rubric of the dataset that names ``judge``.

    Args:
        catalog: The catalog (the judge is a catalog model).
        store: The store (response cache, calibrations).
        judge: The judge model's slug.
        model: The judged model's slug.
        dataset: The dataset name.
        frame: The partition's scoring frame (``sample_id``, ``prompt_version``,
            ``completion``, ``request_hash``, ``target``, ``fields``).
        provider: The judge's loaded provider (the task's), or None to create one.
        controls: The run's limits for API judges (budget, deadline).

    Returns:
        One ``judgements`` row per sample x rubric: the raw verdict, its parsed score, the
        calibrated score where the judge's calibration of that rubric version is fitted,
        tokens and cost; and the call counts.

    Raises:
        GenerationStopped: An API judge stopped early (budget, credentials, breaker).
    """
    spec = catalog.dataset_specs[dataset]
    judge_spec = catalog.model(judge)
    identity = judge_identity(catalog, judge)
    stats = RunStats()
    rows: list[dict[str, object]] = []
    for scorer in spec.scorers:
        if scorer.name != JUDGE_SCORER:
            continue
        params = JudgeParams.model_validate(scorer.params)
        if judge not in params.judges:
            continue
        prompt = rubric_prompt(catalog.root, params.rubric)
        calls = run_judge(
            catalog,
            store,
            judge,
            prompt,
            items_from_frame(frame, params.question_field),
            max_tokens=params.max_tokens,
            provider=provider,
            controls=controls,
        )
        calibration = load_calibration(store, judge, params.rubric, prompt.version)
        raw = [c.score for c in calls]
        calibrated: list[float | None] = [None] * len(raw)
        if calibration is not None:
            mapped = calibration.apply([np.nan if v is None else v for v in raw])
            calibrated = [None if v is None else float(m) for v, m in zip(raw, mapped, strict=True)]
        judged = frame.select("sample_id", "prompt_version", "request_hash").iter_rows()
        for call, cal, (sample_id, prompt_version, judged_hash) in zip(
            calls, calibrated, judged, strict=True
        ):
            response = call.response
            tokens_in = response.input_tokens if response else 0
            tokens_out = response.output_tokens if response else 0
            cost = judge_spec.pricing.cost(tokens_in, tokens_out)
            if call.request is not None:
                stats.total += 1
                if call.cached:
                    stats.cached += 1
                elif response is not None:
                    stats.model_calls += 1
                    stats.input_tokens += tokens_in
                    stats.output_tokens += tokens_out
                    stats.wall_s += response.latency_s
                    stats.cost_usd += cost
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt_version": prompt_version,
                    "sample_id": sample_id,
                    "metric": scorer.metric_name,
                    "judge": judge,
                    "judge_revision": judge_spec.revision,
                    "judge_identity": identity,
                    "prompt_kind": RUBRIC,
                    "rubric_version": prompt.version,
                    "request_hash": call.request.request_hash if call.request else None,
                    "judged_hash": judged_hash,
                    "verdict": response.completion if response else None,
                    "status": call.verdict.status,
                    "score": call.score,
                    "reason": call.verdict.reason,
                    "problem": call.verdict.problem,
                    "calibrated": cal,
                    "calibration_version": calibration.version
                    if calibration is not None and cal is not None
                    else None,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": cost,
                    "cached": call.cached,
                    "latency_s": response.latency_s if response else 0.0,
                    "code_version": code_version(),
                }
            )
    return JudgedPartition(rows=pl.DataFrame(rows, schema=JUDGEMENTS), stats=stats)


def write_judgements(
    store: Store, dataset: str, model: str, judge: str, rows: pl.DataFrame
) -> Path:
    """Replace ``judge``'s rows of the partition's ``judgements`` with ``rows``.

    Other judges' rows stay; the read-merge-write runs under an exclusive lock beside
    the partition's file, so two judge tasks finishing together keep both their rows.
    """
    target = store.path("judgements", dataset, model)
    with _partition_lock(target):
        old = store.read_optional("judgements", dataset, model)
        kept = old.filter(pl.col("judge") != judge) if old is not None else None
        merged = rows if kept is None or kept.is_empty() else pl.concat([kept, rows])
        return store.write("judgements", merged, dataset=dataset, model=model)


@contextmanager
def _partition_lock(target: Path) -> Iterator[None]:
    # A hidden file beside the table's file: *.parquet globs never see it.
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".judgements.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
