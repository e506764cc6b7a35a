"""The aggregate stage: per-metric means with uncertainty, plus cost, tokens and latency."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.schemas import AGGREGATES
from eval_pipeline.scoring import stats
from eval_pipeline.storage import Store

BOOTSTRAP_SEED = 20240601


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
        "cache_hit_rate": float(generations["cached"].mean()) if generations.height else None,
    }
    prompt_version = generations["prompt_version"][0] if generations.height else ""
    rows = []
    for scorer in spec.scorers:
        metric = scorer.metric_name
        values = (
            scores.filter((pl.col("metric") == metric) & pl.col("value").is_not_null())["value"]
            .to_list()
        )
        low, high = stats.bootstrap_ci(values, confidence=confidence, seed=BOOTSTRAP_SEED)
        mean = stats.mean(values)
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "prompt_version": prompt_version,
                "metric": metric,
                "n": len(values),
                "mean": mean,
                "stderr": stats.stderr(values),
                "ci_low": low,
                "ci_high": high,
                # One sample per problem: pass@1 is the pass rate (unbiased estimator, n=1).
                "pass_at_1": mean if metric in code_metrics else None,
                **shared,
            }
        )
    frame = pl.DataFrame(rows, schema=AGGREGATES)
    path = store.write("aggregates", frame, dataset=dataset, model=model)
    return AggregateReport(path=path, frame=frame)
