"""The ``llm_judge`` scorer: score rows from the ``judgements`` the judge stage wrote.

Nothing here calls a model. The score stage hands each ``llm_judge`` scorer the
partition's scoring frame and its ``judgements`` rows; a verdict that is missing, or was
given for another generation, rubric version or judge revision, is an error that names
the judge task to run, never a reason to call the judge here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from eval_pipeline.catalog import Catalog, ScorerSpec
from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.judge._pairwise import (
    PairwiseParams,
    baseline_answers,
    consistent_outcome,
)
from eval_pipeline.judge._rubrics import (
    JudgeParams,
    MtBenchParams,
    judge_metric_names,
    rubric_prompt,
)
from eval_pipeline.judge._stage import judge_identity
from eval_pipeline.storage import Store


class VerdictsMissing(EvalPipelineError):
    """The ``judgements`` table lacks verdicts the scores need; the message names the task."""


def _verdicts(
    wanted: pl.DataFrame,
    rows: pl.DataFrame,
    *,
    partition: str,
    judge: str,
    what: str,
) -> pl.DataFrame:
    """``rows`` joined to the samples ``wanted`` (sample_id, judged_hash), in their order.

    Raises:
        VerdictsMissing: Some sample has no current row; the message names ``what`` is
            missing and the judge task to run.
    """
    found = wanted.join(
        rows,
        on=["sample_id", "judged_hash"],
        how="left",
        maintain_order="left",
        nulls_equal=True,
    )
    missing = found.filter(pl.col("status").is_null())["sample_id"].to_list()
    if missing:
        raise VerdictsMissing(
            f"scores of {partition}: judge '{judge}' has no current {what} for "
            f"{len(missing)} of {wanted.height} samples (first: {missing[0]}). Run the judge "
            f"task first: materialize the `judgements` asset of partition {partition} "
            f"(`eval-pipeline run` does both), which runs judge {judge} where its catalog "
            "entry says."
        )
    return found


@dataclass(frozen=True)
class JudgeScores:
    """What one ``llm_judge`` scorer adds: one frame per metric (sample_id, metric, value, detail)."""

    frames: list[pl.DataFrame]


def judge_scores(
    catalog: Catalog,
    model: str,
    dataset: str,
    scorer: ScorerSpec,
    frame: pl.DataFrame,
    judgements: pl.DataFrame | None,
) -> JudgeScores:
    """Score one ``llm_judge`` scorer of a partition from its ``judgements`` rows.

    Args:
        catalog: The catalog (judge identities, rubric versions).
        model: The judged model's slug.
        dataset: The dataset name.
        scorer: The dataset's ``llm_judge`` scorer spec.
        frame: The partition's scoring frame (``sample_id``, ``request_hash``).
        judgements: The partition's ``judgements`` table (None when never written).

    Returns:
        A frame for every metric of :func:`judge_metric_names`: null values where the
        verdict could not be read (the detail says why).

    Raises:
        VerdictsMissing: A judge has no current verdict for some sample.
    """
    params = JudgeParams.model_validate(scorer.params)
    metric = scorer.metric_name
    version = rubric_prompt(catalog.root, params.rubric).version
    sample_ids = frame["sample_id"].to_list()
    wanted = frame.select("sample_id", pl.col("request_hash").alias("judged_hash"))
    raw: dict[str, list[float | None]] = {}
    calibrated: dict[str, list[float | None]] = {}
    details: dict[str, list[str]] = {}
    versions: dict[str, str] = {}
    for judge in params.judges:
        rows = _current_rows(catalog, judgements, judge, metric, version)
        found = _verdicts(
            wanted,
            rows,
            partition=f"{dataset}|{model}",
            judge=judge,
            what=f"verdict on rubric {params.rubric} ({version})",
        )
        raw[judge] = found["score"].to_list()
        calibrated[judge] = found["calibrated"].to_list()
        details[judge] = [
            reason if status == "ok" else f"{status}: {problem}"
            for status, reason, problem in found.select("status", "reason", "problem").iter_rows()
        ]
        fitted = found["calibration_version"].drop_nulls()
        versions[judge] = fitted[0] if fitted.len() else "uncalibrated"
    names = judge_metric_names(metric, params)
    frames = [_frame(sample_ids, names[0], _mean_over(raw), _panel_detail(details))]
    if len(params.judges) > 1:
        for judge in params.judges:
            frames.append(_frame(sample_ids, f"{metric}:{judge}", raw[judge], details[judge]))
    cal_detail = ", ".join(f"{j}: {v}" for j, v in versions.items())
    frames.append(
        _frame(
            sample_ids,
            f"{metric}:calibrated",
            _mean_over(calibrated),
            [cal_detail] * len(sample_ids),
        )
    )
    return JudgeScores(frames=frames)


def mt_bench_scores(
    catalog: Catalog,
    model: str,
    dataset: str,
    scorer: ScorerSpec,
    frame: pl.DataFrame,
    judgements: pl.DataFrame | None,
) -> JudgeScores:
    """Score an ``mt_bench`` scorer from its per-turn ``judgements`` rows.

    Metrics: ``<metric>:turn<k>`` (each turn's 1-10 rating, the mean over judges) and
    ``<metric>`` (the mean of the sample's readable turn ratings, MT-Bench's score).

    Raises:
        VerdictsMissing: A judge has no current rating for some turn of some sample.
    """
    params = MtBenchParams.model_validate(scorer.params)
    metric = scorer.metric_name
    sample_ids = frame["sample_id"].to_list()
    n_turns = max(
        (len(json.loads(f).get("turns") or []) for f in frame["fields"].to_list() if f),
        default=1,
    )
    per_turn: dict[int, dict[str, list[float | None]]] = {}
    details: dict[int, list[str]] = {}
    for turn in range(1, n_turns + 1):
        name = f"{metric}:turn{turn}"
        wanted = frame.select("sample_id", pl.col("request_hash").alias("judged_hash"))
        per_turn[turn] = {}
        for judge in params.judges:
            rows = _rows_of(catalog, judgements, judge, name)
            found = _verdicts(
                wanted,
                rows,
                partition=f"{dataset}|{model}",
                judge=judge,
                what=f"MT-Bench rating of turn {turn}",
            )
            per_turn[turn][judge] = found["score"].to_list()
            details[turn] = [
                "" if status == "ok" else f"{status}: {problem}"
                for status, problem in found.select("status", "problem").iter_rows()
            ]
    turn_means = {t: _mean_over(v) for t, v in per_turn.items()}
    overall = _mean_over({str(t): v for t, v in turn_means.items()})
    frames = [_frame(sample_ids, metric, overall, [""] * len(sample_ids))]
    for turn, values in turn_means.items():
        frames.append(_frame(sample_ids, f"{metric}:turn{turn}", values, details[turn]))
    return JudgeScores(frames=frames)


def pairwise_scores(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    scorer: ScorerSpec,
    frame: pl.DataFrame,
    judgements: pl.DataFrame | None,
) -> JudgeScores:
    """Score a ``pairwise_judge`` scorer from the two orders' ``judgements`` rows.

    Metrics: ``<metric>`` (the order-consistent outcome, 1 win / 0.5 tie / 0 loss: its
    mean is the win rate), ``<metric>:position_consistent`` (1 where both orders agreed)
    and ``<metric>:length_diff`` (the model's answer's length minus the baseline's, in
    characters: the aggregates fit the length-controlled win rate on it).

    Raises:
        VerdictsMissing: A judge has no current verdict for some order of some sample.
    """
    params = PairwiseParams.model_validate(scorer.params)
    metric = scorer.metric_name
    sample_ids = frame["sample_id"].to_list()
    wanted = frame.select("sample_id", pl.col("request_hash").alias("judged_hash"))
    outcomes: dict[str, list[float | None]] = {}
    agreed: dict[str, list[float | None]] = {}
    for judge in params.judges:
        by_order: list[list[float | None]] = []
        for suffix in ("model-first", "model-second"):
            rows = _rows_of(catalog, judgements, judge, f"{metric}:{suffix}")
            found = _verdicts(
                wanted,
                rows,
                partition=f"{dataset}|{model}",
                judge=judge,
                what=f"pairwise verdict ({suffix})",
            )
            by_order.append(found["score"].to_list())
        pairs = [consistent_outcome(a, b) for a, b in zip(*by_order, strict=True)]
        outcomes[judge] = [p[0] for p in pairs]
        agreed[judge] = [
            None if a is None or b is None else float(ok)
            for (a, b), (_, ok) in zip(zip(*by_order, strict=True), pairs, strict=True)
        ]
    baselines = baseline_answers(store, params, dataset, frame)
    lengths: list[float | None] = [
        None if answer is None or base is None else float(len(answer) - len(base))
        for answer, base in zip(frame["completion"].to_list(), baselines, strict=True)
    ]
    blank = [""] * len(sample_ids)
    return JudgeScores(
        frames=[
            _frame(sample_ids, metric, _mean_over(outcomes), blank),
            _frame(sample_ids, f"{metric}:position_consistent", _mean_over(agreed), blank),
            _frame(sample_ids, f"{metric}:length_diff", lengths, blank),
        ]
    )


def _rows_of(
    catalog: Catalog, judgements: pl.DataFrame | None, judge: str, metric: str
) -> pl.DataFrame:
    columns = ["sample_id", "judged_hash", "status", "score", "problem"]
    if judgements is None:
        return pl.DataFrame(schema={c: pl.String for c in columns}).with_columns(
            pl.col("score").cast(pl.Float64)
        )
    return judgements.filter(
        (pl.col("judge") == judge)
        & (pl.col("metric") == metric)
        & (pl.col("judge_identity") == judge_identity(catalog, judge))
    ).select(columns)


def _current_rows(
    catalog: Catalog, judgements: pl.DataFrame | None, judge: str, metric: str, version: str
) -> pl.DataFrame:
    """``judge``'s rows of ``metric`` given on this rubric version by this judge identity."""
    columns = ["sample_id", "judged_hash", "status", "score", "calibrated"]
    columns += ["calibration_version", "reason", "problem"]
    if judgements is None:
        return pl.DataFrame(schema={c: pl.String for c in columns}).with_columns(
            pl.col("score", "calibrated").cast(pl.Float64)
        )
    return judgements.filter(
        (pl.col("judge") == judge)
        & (pl.col("metric") == metric)
        & (pl.col("rubric_version") == version)
        & (pl.col("judge_identity") == judge_identity(catalog, judge))
    ).select(columns)


def _mean_over(per_judge: dict[str, list[float | None]]) -> list[float | None]:
    # A panel score averages the judges that gave a readable verdict; none: null.
    out: list[float | None] = []
    for values in zip(*per_judge.values(), strict=True):
        got = [v for v in values if v is not None]
        out.append(float(np.mean(got)) if got else None)
    return out


def _panel_detail(details: dict[str, list[str]]) -> list[str]:
    if len(details) == 1:
        return next(iter(details.values()))
    return [
        "; ".join(f"{j}: {d}" for j, d in zip(details, row, strict=True))
        for row in zip(*details.values(), strict=True)
    ]


def _frame(
    sample_ids: list[str], metric: str, values: list[float | None], detail: list[str]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_id": sample_ids,
            "metric": [metric] * len(sample_ids),
            "value": values,
            "detail": detail,
        },
        schema={
            "sample_id": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
            "detail": pl.String,
        },
    )
