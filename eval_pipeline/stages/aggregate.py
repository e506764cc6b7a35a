"""The aggregate stage: per-metric means with uncertainty, plus cost, tokens and latency."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Any: aggregate rows (any column value).
from typing import Any, cast

import numpy as np
import polars as pl

from eval_pipeline.catalog import Catalog, DatasetSpec
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.keys import problem_id
from eval_pipeline.core.schemas import AGGREGATES, SLICE_AGGREGATES
from eval_pipeline.judge import (
    JUDGE_SCORER,
    PAIRWISE_SCORER,
    JudgedPair,
    JudgeParams,
    PairwiseParams,
    baseline_answers,
    calibrated_mean_interval,
    krippendorff_alpha,
    length_controlled_win_rate,
    load_calibration_document,
    load_pairwise_labels,
    pairwise_human_agreement,
)
from eval_pipeline.scoring import count_suspicious, stats
from eval_pipeline.stages.score import scoring_frame
from eval_pipeline.storage import Store

BOOTSTRAP_SEED = 20240601
LC_RESAMPLES = 500  # bootstrap refits of the length-controlled win rate


@dataclass(frozen=True)
class AggregateReport:
    path: Path
    frame: pl.DataFrame


def aggregate(
    catalog: Catalog, store: Store, model: str, dataset: str, *, confidence: float = 0.95
) -> AggregateReport:
    """Summarize one partition: n, mean, stderr and a seeded bootstrap CI per metric."""
    spec = catalog.dataset_specs[dataset]
    code_metrics = {s.metric_name for s in spec.scorers if s.name == "code_execution"}
    generations = store.read("generations", dataset=dataset, model=model)
    scores = store.read("scores", dataset=dataset, model=model)
    latencies = generations.filter(pl.col("error").is_null())["latency_s"].to_list()
    shared = {
        "samples": generations.height,
        "error_count": int(generations["error"].is_not_null().sum()),
        "input_tokens": int(generations["input_tokens"].sum()),
        "output_tokens": int(generations["output_tokens"].sum()),
        "cost_usd": float(generations["cost_usd"].sum()),
        "dataset_version": generations["dataset_version"][0] if generations.height else "",
        "code_version": code_version(),
        "latency_p50_s": stats.percentile(latencies, 50),
        "latency_p95_s": stats.percentile(latencies, 95),
        # A boolean column's mean is a float (polars types it as any literal).
        "cache_hit_rate": cast(float, generations["cached"].mean()) if generations.height else None,
        **_telemetry(store, model, dataset),
    }
    prompt_version = generations["prompt_version"][0] if generations.height else ""
    # How the model answered: a log-likelihood and a generated-answer accuracy are never
    # put side by side unlabelled; a not_applicable cell keeps one row per metric, n = 0.
    mode = catalog.answer_mode(model, dataset)
    if spec.lm_eval:
        return _aggregate_lm_eval(catalog, store, model, dataset, scores, shared, mode)
    rows = []
    for metric in _metrics(spec, scores):
        applicable = scores.filter((pl.col("metric") == metric) & pl.col("value").is_not_null())
        values = applicable["value"].to_list()
        low, high = stats.bootstrap_ci(values, confidence=confidence, seed=BOOTSTRAP_SEED)
        mean = stats.mean(values)
        pass_at_1 = suspicious = None
        if metric in code_metrics:
            suspicious = count_suspicious(applicable["detail"].to_list())
            # One sample per problem: pass@1 is the pass rate (unbiased estimator, n=1).
            # Several: the unbiased estimator per problem, averaged over problems.
            pass_at_1 = (
                stats.pass_at_k_over_problems(applicable["sample_id"].to_list(), values, 1)
                if spec.samples_per_problem > 1
                else mean
            )
        row = {
            "model": model,
            "dataset": dataset,
            "prompt_version": prompt_version,
            "metric": metric,
            "n": len(values),
            "mean": mean,
            "stderr": stats.stderr(values),
            "ci_low": low,
            "ci_high": high,
            "pass_at_1": pass_at_1,
            "answer_mode": mode,
            **shared,
            "suspicious": suspicious,
        }
        rows.append(row)
        if metric in code_metrics and spec.samples_per_problem > 1:
            rows.extend(_pass_at_k_rows(row, applicable, spec.samples_per_problem))
    _widen_calibrated_intervals(spec, store, scores, rows, confidence)
    rows.extend(_judge_agreement_rows(spec, scores, rows[0] if rows else None))
    rows.extend(_length_controlled_rows(spec, scores, rows[0] if rows else None, confidence))
    rows.extend(_pairwise_trust_rows(catalog, store, model, dataset, scores, rows))
    frame = pl.DataFrame(rows, schema=AGGREGATES)
    path = store.write("aggregates", frame, dataset=dataset, model=model)
    samples = store.read_optional("dataset_samples", dataset=dataset)
    if samples is not None:
        slices = slice_aggregates(
            scores, samples, model, dataset, prompt_version, confidence=confidence
        )
        store.write("slice_aggregates", slices, dataset=dataset, model=model)
    return AggregateReport(path=path, frame=frame)


def _aggregate_lm_eval(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    scores: pl.DataFrame,
    shared: dict,
    mode: str,
) -> AggregateReport:
    """An lm_eval dataset's aggregates: lm-eval's aggregations, its groups' and slices'."""
    from eval_pipeline.stages._lm_eval import aggregate_rows

    prompt_version = scores["prompt_version"][0] if scores.height else ""
    if mode == "not_applicable":
        whole = [_empty(catalog.dataset_specs[dataset].primary)]
        slices: list[dict[str, Any]] = []
    else:
        whole, slices = aggregate_rows(catalog, dataset, scores, letters=mode == "generate")
    base = {"model": model, "dataset": dataset, "prompt_version": prompt_version}
    rows = [
        {**base, **row, "pass_at_1": None, "answer_mode": mode, **shared, "suspicious": None}
        for row in whole
    ]
    frame = pl.DataFrame(rows, schema=AGGREGATES)
    path = store.write("aggregates", frame, dataset=dataset, model=model)
    slice_frame = pl.DataFrame([{**base, **row} for row in slices], schema=SLICE_AGGREGATES)
    store.write("slice_aggregates", slice_frame, dataset=dataset, model=model)
    return AggregateReport(path=path, frame=frame)


def _empty(metric: str) -> dict:
    return {"metric": metric, "n": 0, "mean": None, "stderr": None, "ci_low": None, "ci_high": None}


def _telemetry(store: Store, model: str, dataset: str) -> dict[str, float | None]:
    """How the partition's latest generation step ran (all null if it recorded nothing)."""
    names = ("model_load_s", "tokens_per_s", "peak_rss_gb", "gpu_peak_mem_gb", "gpu_util_mean")
    frame = store.read_optional("telemetry", dataset=dataset, model=model)
    if frame is None or frame.is_empty():
        return dict.fromkeys(names)
    row = frame.row(0, named=True)
    return {name: row[name] for name in names}


def _metrics(spec: DatasetSpec, scores: pl.DataFrame) -> list[str]:
    # The spec's metrics first (a scorer with no rows still gets its row), then the extra
    # metrics some scorers write (a judge's per-judge and calibrated scores) in score order.
    named = [s.metric_name for s in spec.scorers]
    extra = [m for m in scores["metric"].unique(maintain_order=True).to_list() if m not in named]
    return named + extra


def _pass_at_k_rows(row: dict, applicable: pl.DataFrame, samples_per_problem: int) -> list[dict]:
    ids, values = applicable["sample_id"].to_list(), applicable["value"].to_list()
    problems = {problem_id(i) for i in ids}
    out = []
    for k in (2, 5, 10, 20, 50, 100):
        if k > samples_per_problem:
            break
        try:
            estimate = stats.pass_at_k_over_problems(ids, values, k)
        except ValueError:
            break  # some problem has fewer than k samples (errors, a sample limit)
        out.append(
            {
                **row,
                "metric": f"{row['metric']}:pass@{k}",
                "n": len(problems),
                "mean": estimate,
                "stderr": None,
                "ci_low": None,
                "ci_high": None,
                "pass_at_1": None,
            }
        )
    return out


def _widen_calibrated_intervals(
    spec: DatasetSpec,
    store: Store,
    scores: pl.DataFrame,
    rows: list[dict[str, object]],
    confidence: float,
) -> None:
    """Give each single-judge ``<metric>:calibrated`` row an interval with the fit's error.

    The interval resamples the calibration labels with the samples
    (:func:`eval_pipeline.judge.calibrated_mean_interval`); panels keep the plain bootstrap.
    """
    for scorer in spec.scorers:
        if scorer.name != JUDGE_SCORER:
            continue
        params = JudgeParams.model_validate(scorer.params)
        if len(params.judges) != 1:
            continue
        document = load_calibration_document(store, params.judges[0], params.rubric)
        if document is None:
            continue
        raw = (
            scores.filter((pl.col("metric") == scorer.metric_name) & pl.col("value").is_not_null())[
                "value"
            ]
            .cast(pl.Float64)
            .to_list()
        )
        interval = calibrated_mean_interval(raw, document, confidence=confidence)
        for row in rows:
            if row["metric"] == f"{scorer.metric_name}:calibrated" and row["n"] and interval:
                row["ci_low"], row["ci_high"] = interval


def _length_controlled_rows(
    spec: DatasetSpec, scores: pl.DataFrame, template: dict | None, confidence: float
) -> list[dict]:
    """Each ``pairwise_judge`` metric's length-controlled win rate (AlpacaEval 2.0).

    Beside the raw win rate (the metric's mean): ``<metric>:length_controlled``, fitted by
    :func:`eval_pipeline.judge.length_controlled_win_rate` on the samples with an outcome
    and a length difference; its interval a seeded bootstrap over those samples, refitting
    on each resample.
    """
    if template is None:
        return []
    out = []
    for scorer in spec.scorers:
        if scorer.name != PAIRWISE_SCORER:
            continue
        metric = scorer.metric_name
        wide = (
            scores.filter(pl.col("metric").is_in([metric, f"{metric}:length_diff"]))
            .pivot(on="metric", index="sample_id", values="value")
            .drop_nulls()
        )
        if metric not in wide.columns or f"{metric}:length_diff" not in wide.columns:
            wide = pl.DataFrame({metric: [], f"{metric}:length_diff": []})
        y = wide[metric].to_numpy().astype(float)
        d = wide[f"{metric}:length_diff"].to_numpy().astype(float)
        value = length_controlled_win_rate(y, d)
        low = high = None
        if value is not None:
            rng = np.random.default_rng(BOOTSTRAP_SEED)
            fits = []
            for _ in range(LC_RESAMPLES):
                pick = rng.integers(0, y.size, y.size)
                fit = length_controlled_win_rate(y[pick], d[pick])
                if fit is not None:
                    fits.append(fit)
            tail = (1 - confidence) / 2 * 100
            low, high = (float(v) for v in np.percentile(fits, [tail, 100 - tail]))
        out.append(
            {
                **template,
                "metric": f"{metric}:length_controlled",
                "n": int(y.size),
                "mean": value,
                "stderr": None,
                "ci_low": low,
                "ci_high": high,
                "pass_at_1": None,
                "suspicious": None,
            }
        )
    return out


def _pairwise_trust_rows(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    scores: pl.DataFrame,
    rows: list[dict],
) -> list[dict]:
    """How far to trust each ``pairwise_judge`` metric's verdicts.

    ``<metric>:position_bias``: the share of pairs whose verdict changed when the order
    was swapped (one minus ``<metric>:position_consistent``; its interval that row's
    bootstrap interval, mirrored). ``<metric>:human_agreement`` and ``<metric>:human_kappa``,
    where imported pairwise labels match the partition's pairs
    (:func:`eval_pipeline.judge.pairwise_human_agreement`): the share of labels the judge's
    verdict agrees with and Cohen's kappa, each with a seeded bootstrap interval over the
    labels; ``n`` is the number of matching labels.
    """
    spec = catalog.dataset_specs[dataset]
    if not rows:
        return []
    template = rows[0]
    by_metric = {r["metric"]: r for r in rows}
    labels: list[dict[str, object]] | None = None
    out = []
    for scorer in spec.scorers:
        if scorer.name != PAIRWISE_SCORER:
            continue
        metric = scorer.metric_name
        consistent = by_metric.get(f"{metric}:position_consistent")
        if consistent is not None and consistent["mean"] is not None:
            low, high = consistent["ci_low"], consistent["ci_high"]
            out.append(
                {
                    **template,
                    "metric": f"{metric}:position_bias",
                    "n": consistent["n"],
                    "mean": 1.0 - consistent["mean"],
                    "stderr": consistent["stderr"],
                    "ci_low": None if high is None else 1.0 - high,
                    "ci_high": None if low is None else 1.0 - low,
                    "pass_at_1": None,
                    "suspicious": None,
                }
            )
        if labels is None:
            labels = load_pairwise_labels(catalog.root)
        if not labels:
            continue
        params = PairwiseParams.model_validate(scorer.params)
        frame = scoring_frame(catalog, store, model, dataset)
        outcomes = dict(
            scores.filter(pl.col("metric") == metric).select("sample_id", "value").iter_rows()
        )
        pairs = [
            JudgedPair(
                question=str(json.loads(row["fields"] or "{}").get(params.question_field, "")),
                answer=row["completion"],
                baseline=baseline,
                outcome=outcomes.get(row["sample_id"]),
            )
            for row, baseline in zip(
                frame.iter_rows(named=True),
                baseline_answers(store, params, dataset, frame),
                strict=True,
            )
            if row["completion"] is not None and baseline is not None
        ]
        found = pairwise_human_agreement(labels, pairs)
        if found.n == 0:
            continue
        for name, value, interval in (
            ("human_agreement", found.agreement, found.agreement_ci),
            ("human_kappa", found.kappa, found.kappa_ci),
        ):
            out.append(
                {
                    **template,
                    "metric": f"{metric}:{name}",
                    "n": found.n,
                    "mean": value,
                    "stderr": None,
                    "ci_low": interval[0] if interval else None,
                    "ci_high": interval[1] if interval else None,
                    "pass_at_1": None,
                    "suspicious": None,
                }
            )
    return out


def _judge_agreement_rows(
    spec: DatasetSpec, scores: pl.DataFrame, template: dict[str, object] | None
) -> list[dict[str, object]]:
    # Several judges on one rubric: how far they agree, as mean pairwise quadratic-weighted
    # kappa and Spearman over the samples both judges could score.
    if template is None:
        return []
    out = []
    for scorer in spec.scorers:
        if scorer.name != JUDGE_SCORER:
            continue
        params = JudgeParams.model_validate(scorer.params)
        if len(params.judges) < 2:
            continue
        metric = scorer.metric_name
        wide = scores.filter(
            pl.col("metric").is_in([f"{metric}:{j}" for j in params.judges])
        ).pivot(on="metric", index="sample_id", values="value")
        kappas, rhos, pairs = [], [], 0
        for i, a in enumerate(params.judges):
            for b in params.judges[i + 1 :]:
                both = wide.select(f"{metric}:{a}", f"{metric}:{b}").drop_nulls()
                pairs = max(pairs, both.height)
                x, y = both[f"{metric}:{a}"].to_list(), both[f"{metric}:{b}"].to_list()
                kappa = stats.quadratic_weighted_kappa(x, y)
                rho = stats.spearman(x, y)
                if kappa is not None:
                    kappas.append(kappa)
                if rho is not None:
                    rhos.append(rho)
        # Krippendorff's alpha over the whole panel, with a bootstrap interval over samples.
        units = wide.select([f"{metric}:{j}" for j in params.judges]).rows()
        alpha = krippendorff_alpha(units)
        low = high = None
        if alpha is not None:
            rng = np.random.default_rng(BOOTSTRAP_SEED)
            draws = [
                krippendorff_alpha([units[i] for i in rng.integers(0, len(units), len(units))])
                for _ in range(500)
            ]
            kept = [d for d in draws if d is not None]
            if kept:
                low, high = (float(v) for v in np.percentile(kept, [2.5, 97.5]))
        out.append(
            {
                **template,
                "metric": f"{metric}:agreement_alpha",
                "n": len(units),
                "mean": alpha,
                "stderr": None,
                "ci_low": low,
                "ci_high": high,
                "pass_at_1": None,
                "suspicious": None,
            }
        )
        for name, found in (("kappa", kappas), ("spearman", rhos)):
            out.append(
                {
                    **template,
                    "metric": f"{metric}:agreement_{name}",
                    "n": pairs,
                    "mean": stats.mean(found),
                    "stderr": None,
                    "ci_low": None,
                    "ci_high": None,
                    "pass_at_1": None,
                    "suspicious": None,
                }
            )
    return out


def slice_aggregates(
    scores: pl.DataFrame,
    samples: pl.DataFrame,
    model: str,
    dataset: str,
    prompt_version: str,
    *,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Per tag (slice) and metric: n, mean, stderr and seeded bootstrap CI.

    A sample belongs to every slice named by one of its tags; samples without tags
    belong to no slice.
    """
    tagged = (
        samples.select("sample_id", "tags")
        .explode("tags")
        .drop_nulls("tags")
        .rename({"tags": "slice"})
    )
    joined = scores.filter(pl.col("value").is_not_null()).join(tagged, on="sample_id", how="inner")
    rows = []
    for (slice_name, metric), group in joined.group_by(["slice", "metric"], maintain_order=True):
        values = group["value"].to_list()
        low, high = stats.bootstrap_ci(values, confidence=confidence, seed=BOOTSTRAP_SEED)
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "prompt_version": prompt_version,
                "slice": slice_name,
                "metric": metric,
                "n": len(values),
                "mean": stats.mean(values),
                "stderr": stats.stderr(values),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pl.DataFrame(rows, schema=SLICE_AGGREGATES).sort(["slice", "metric"])
