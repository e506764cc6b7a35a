"""Prometheus metrics computed from the Parquet store.

A :class:`StoreCollector` reads the store on every scrape (or ``metrics write``) and
reports what the latest results say: request latency and errors by provider, tokens and
cost by provider and model (judges included), cache hits, each partition's metric means,
flagged regressions and suspicious sandbox programs. Names follow Prometheus conventions:
base units (seconds), ``_total`` on counters, ``eval_pipeline_`` prefix.

Values are derived from stored rows, so a counter is the sum over the rows stored now
(rows are replaced when a partition is evaluated again): graph them with ``max_over_time``
or alert on changes, not ``rate()`` over long windows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import polars as pl
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from eval_pipeline.storage import Store

PREFIX = "eval_pipeline"
# Request latency buckets in seconds: local models answer in tens of milliseconds per row,
# API models in seconds, the slowest in minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def latency_histogram(
    name: str, documentation: str, rows: pl.DataFrame, labels: list[str]
) -> HistogramMetricFamily:
    """A histogram family with one series per label combination of ``rows``' ``value``."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    if rows.is_empty():
        return family
    for key, group in rows.group_by(labels, maintain_order=True):
        values = group["value"].to_numpy()
        buckets = [(str(b), float((values <= b).sum())) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([str(k) for k in key], buckets, float(values.sum()))
    return family


class StoreCollector(Collector):
    """Collects the store's metrics on every scrape."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        generations = self.store.scan("generations").collect()
        judgements = self.store.scan("judgements").collect()
        yield from self._requests(generations)
        yield from self._spend(generations, judgements)
        yield from self._cache(generations)
        yield from self._results()
        yield self._regressions()

    def _requests(self, generations: pl.DataFrame) -> Iterator[Metric]:
        answered = generations.filter(~pl.col("cached") & pl.col("error").is_null())
        yield latency_histogram(
            f"{PREFIX}_request_latency_seconds",
            "Latency of the model requests behind the stored rows (cached rows excluded).",
            answered.select("provider", value="latency_s"),
            ["provider"],
        )
        errors = CounterMetricFamily(
            f"{PREFIX}_request_errors",
            "Stored rows whose request failed, by provider and model.",
            labels=["provider", "model"],
        )
        failed = (
            generations.group_by("provider", "model", maintain_order=True)
            .agg(pl.col("error").is_not_null().sum().alias("n"))
            .sort("provider", "model")
        )
        for row in failed.iter_rows(named=True):
            errors.add_metric([row["provider"], row["model"]], float(row["n"]))
        yield errors

    def _spend(self, generations: pl.DataFrame, judgements: pl.DataFrame) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            f"{PREFIX}_tokens",
            "Tokens of the stored rows by provider, model, role (generation or judge) and "
            "direction (input or output).",
            labels=["provider", "model", "role", "direction"],
        )
        cost = CounterMetricFamily(
            f"{PREFIX}_cost_usd",
            "Cost in US dollars of the stored rows by provider, model and role.",
            labels=["provider", "model", "role"],
        )
        frames = [
            generations.select(
                "provider",
                "model",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                role=pl.lit("generation"),
            ),
            judgements.select(
                provider=pl.lit("judge"),
                model="judge",
                input_tokens="input_tokens",
                output_tokens="output_tokens",
                cost_usd="cost_usd",
                role=pl.lit("judge"),
            ),
        ]
        totals = (
            pl.concat(frames)
            .group_by("provider", "model", "role")
            .agg(pl.col("input_tokens", "output_tokens", "cost_usd").sum())
            .sort("role", "provider", "model")
        )
        for row in totals.iter_rows(named=True):
            labels = [row["provider"], row["model"], row["role"]]
            tokens.add_metric([*labels, "input"], float(row["input_tokens"]))
            tokens.add_metric([*labels, "output"], float(row["output_tokens"]))
            cost.add_metric(labels, float(row["cost_usd"]))
        yield tokens
        yield cost

    def _cache(self, generations: pl.DataFrame) -> Iterator[Metric]:
        responses = CounterMetricFamily(
            f"{PREFIX}_responses",
            "Stored rows by model, dataset and where the answer came from (cache or model).",
            labels=["model", "dataset", "source"],
        )
        ratio = GaugeMetricFamily(
            f"{PREFIX}_cache_hit_ratio",
            "Share of a partition's stored rows answered from the response cache.",
            labels=["model", "dataset"],
        )
        counts = (
            generations.group_by("model", "dataset")
            .agg(cached=pl.col("cached").sum(), rows=pl.len())
            .sort("model", "dataset")
        )
        for row in counts.iter_rows(named=True):
            labels = [row["model"], row["dataset"]]
            responses.add_metric([*labels, "cache"], float(row["cached"]))
            responses.add_metric([*labels, "model"], float(row["rows"] - row["cached"]))
            ratio.add_metric(labels, row["cached"] / row["rows"] if row["rows"] else 0.0)
        yield responses
        yield ratio

    def _results(self) -> Iterator[Metric]:
        means = GaugeMetricFamily(
            f"{PREFIX}_metric_mean",
            "Each partition's metric mean from its latest aggregates.",
            labels=["model", "dataset", "metric"],
        )
        aggregates = self.store.scan("aggregates").collect()
        for row in aggregates.sort("model", "dataset", "metric").iter_rows(named=True):
            if row["mean"] is not None:
                means.add_metric([row["model"], row["dataset"], row["metric"]], row["mean"])
        yield means
        suspicious = CounterMetricFamily(
            f"{PREFIX}_sandbox_suspicious",
            "Scored programs the code sandbox flagged as suspicious (tampering patterns).",
            labels=["model", "dataset", "metric"],
        )
        for row in aggregates.filter(pl.col("suspicious").is_not_null()).iter_rows(named=True):
            suspicious.add_metric(
                [row["model"], row["dataset"], row["metric"]], float(row["suspicious"])
            )
        yield suspicious

    def _regressions(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            f"{PREFIX}_regressions_flagged",
            "Metrics the latest regression report flags as regressed (0 when none or no report).",
        )
        path = self.store.reports_dir / "regression.json"
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            report = {}
        gauge.add_metric([], float(len(report.get("regressions") or [])))
        return gauge
