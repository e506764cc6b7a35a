"""Paired, per-sample comparison of two runs' scores.

Each model x dataset x metric is compared on the samples both runs scored: McNemar's
test when both sides are pass/fail (0/1), a paired bootstrap otherwise. A metric
regressed when the drop is significant (p < alpha) AND larger than its threshold, so a
tiny but consistent drop on a big set and a large drop on five samples are not flagged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from eval_pipeline.scoring import stats

DEFAULT_ALPHA = 0.05
# In the metric's own units: two points of accuracy for a 0-1 metric.
DEFAULT_THRESHOLD = 0.02
BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 20240605


@dataclass(frozen=True)
class FlippedSample:
    """A sample whose score changed between the runs."""

    sample_id: str
    baseline: float
    current: float


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one model x dataset, baseline against current."""

    model: str
    dataset: str
    metric: str
    test: str  # "mcnemar" or "paired_bootstrap"
    n: int  # paired samples
    baseline: float | None
    current: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    threshold: float
    regressed: bool
    improved: bool
    worse: list[FlippedSample] = field(default_factory=list)
    better: list[FlippedSample] = field(default_factory=list)
    baseline_only: int = 0
    current_only: int = 0
    discordant: tuple[int, int] | None = None  # McNemar's (b, c)

    @property
    def partition(self) -> str:
        return f"{self.dataset}|{self.model}"


@dataclass(frozen=True)
class RegressionReport:
    """Every comparison of a current run against a baseline."""

    baseline_name: str
    current_name: str
    alpha: float
    comparisons: list[MetricComparison]
    # ``<dataset>|<model>:<metric>`` pairs left uncompared because the two runs answered
    # in different modes (a log-likelihood and a generated-answer accuracy), with why.
    refused: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.regressed]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def for_partition(self, model: str, dataset: str) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.model == model and c.dataset == dataset]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data: the report's summary and every comparison with its flips."""
        return {
            "baseline": self.baseline_name,
            "current": self.current_name,
            "alpha": self.alpha,
            "regressed": self.regressed,
            "regressions": [f"{c.partition}:{c.metric}" for c in self.regressions],
            "comparisons": [_clean(asdict(c)) for c in self.comparisons],
            "refused": list(self.refused),
        }

    def to_markdown(self, max_flipped: int = 10) -> str:
        """A human-readable report: a summary line, a table, then the flipped samples."""
        lines = [f"# Regression report: {self.current_name} vs baseline {self.baseline_name}", ""]
        refused = [f"- {r}" for r in self.refused]
        if refused:
            refused = ["", "## Not compared: different answer modes", "", *refused]
        if not self.comparisons:
            lines.append("No metric was scored in both runs: nothing to compare.")
            return "\n".join(lines + refused) + "\n"
        if self.regressed:
            names = ", ".join(f"`{c.partition}` {c.metric}" for c in self.regressions)
            lines.append(f"**REGRESSION** in {len(self.regressions)} metric(s): {names}.")
        else:
            lines.append(f"No regression ({len(self.comparisons)} metric(s) compared).")
        lines += [
            "",
            f"Paired per-sample tests; a metric regresses when p < {self.alpha:g} and the "
            "drop exceeds its threshold.",
            "",
            "| model | dataset | metric | test | n | baseline | current | delta | 95% CI | p-value | threshold | flipped (worse/better) | verdict |",
            "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for c in self.comparisons:
            verdict = "REGRESSED" if c.regressed else ("improved" if c.improved else "ok")
            lines.append(
                f"| {c.model} | {c.dataset} | {c.metric} | {c.test} | {c.n} | {_f(c.baseline)} | "
                f"{_f(c.current)} | {_f(c.delta, signed=True)} | [{_f(c.ci_low, signed=True)}, "
                f"{_f(c.ci_high, signed=True)}] | {_p(c.p_value)} | {c.threshold:g} | "
                f"{len(c.worse)}/{len(c.better)} | {verdict} |"
            )
        flipped = [c for c in self.comparisons if c.worse and (c.regressed or c.test == "mcnemar")]
        if flipped:
            lines += ["", "## Samples that got worse", ""]
            for c in flipped:
                shown = ", ".join(
                    f"`{s.sample_id}` ({s.baseline:g} -> {s.current:g})"
                    for s in c.worse[:max_flipped]
                )
                more = (
                    f" and {len(c.worse) - max_flipped} more" if len(c.worse) > max_flipped else ""
                )
                lines.append(f"- {c.partition} {c.metric}: {shown}{more}")
        return "\n".join(lines + refused) + "\n"


def _f(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _clean(obj: Any) -> Any:
    # JSON has no NaN: write null instead.
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def compare_runs(
    baseline_scores: pl.DataFrame,
    current_scores: pl.DataFrame,
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    thresholds: Mapping[str, float] | None = None,
    mid_p: bool = True,
    baseline_name: str = "baseline",
    current_name: str = "current",
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> RegressionReport:
    """Compare two score tables (``scores`` schema) per model x dataset x metric.

    Args:
        baseline_scores: The baseline's per-sample scores.
        current_scores: The current run's per-sample scores.
        alpha: Significance level of the paired tests.
        threshold: The smallest drop (in the metric's units) that counts as a regression.
        thresholds: Per-metric overrides of ``threshold`` (e.g. ``{"helpfulness": 0.25}``
            for a 1-5 judge score).
        mid_p: Use McNemar's mid-p rather than the (conservative) exact p-value.
        baseline_name: Names the baseline in the report.
        current_name: Names the current run in the report.
        resamples: Bootstrap resamples.
        seed: Bootstrap seed (the report is reproducible).

    Returns:
        The report; metrics present on only one side are left out.
    """
    keys = ["model", "dataset", "metric", "sample_id"]
    base = baseline_scores.select(*keys, pl.col("value").alias("baseline"))
    cur = current_scores.select(*keys, pl.col("value").alias("current"))
    comparisons = []
    groups = (
        cur.select("model", "dataset", "metric")
        .unique(maintain_order=True)
        .join(base.select("model", "dataset", "metric").unique(), on=["model", "dataset", "metric"])
        .sort(["model", "dataset"], maintain_order=True)
    )
    modes_a, modes_b = _answer_modes(baseline_scores), _answer_modes(current_scores)
    refused = []
    for model, dataset, metric in groups.iter_rows():
        a, b = modes_a.get((model, dataset)), modes_b.get((model, dataset))
        if a and b and a != b:
            refused.append(
                f"{dataset}|{model}:{metric}: {baseline_name} answered by {a}, "
                f"{current_name} by {b}; a {a} and a {b} score are not comparable"
            )
            continue
        sel = (
            (pl.col("model") == model)
            & (pl.col("dataset") == dataset)
            & (pl.col("metric") == metric)
        )
        b = base.filter(sel & pl.col("baseline").is_not_null()).unique("sample_id", keep="last")
        c = cur.filter(sel & pl.col("current").is_not_null()).unique("sample_id", keep="last")
        paired = b.join(c, on=["model", "dataset", "metric", "sample_id"], how="inner").sort(
            "sample_id"
        )
        limit = (thresholds or {}).get(metric, threshold)
        comparisons.append(
            _compare_metric(
                model,
                dataset,
                metric,
                paired,
                limit,
                alpha,
                mid_p,
                resamples,
                seed,
                baseline_only=b.height - paired.height,
                current_only=c.height - paired.height,
            )
        )
    return RegressionReport(baseline_name, current_name, alpha, comparisons, refused)


def _answer_modes(scores: pl.DataFrame) -> dict[tuple[str, str], str]:
    """Each partition's answer mode in a scores table (tables written before modes: none)."""
    if "answer_mode" not in scores.columns:
        return {}
    known = scores.select("model", "dataset", "answer_mode").drop_nulls().unique()
    return {(m, d): mode for m, d, mode in known.iter_rows()}


def _compare_metric(
    model,
    dataset,
    metric,
    paired: pl.DataFrame,
    limit,
    alpha,
    mid_p,
    resamples,
    seed,
    *,
    baseline_only: int,
    current_only: int,
) -> MetricComparison:
    before = paired["baseline"].to_list()
    after = paired["current"].to_list()
    binary = all(v in (0.0, 1.0) for v in before + after)
    test = "mcnemar" if binary else "paired_bootstrap"
    common = dict(
        model=model,
        dataset=dataset,
        metric=metric,
        test=test,
        n=len(before),
        threshold=limit,
        baseline_only=baseline_only,
        current_only=current_only,
    )
    if not before:
        return MetricComparison(
            **common,
            baseline=None,
            current=None,
            delta=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            regressed=False,
            improved=False,
        )
    delta, low, high, p_boot = stats.paired_bootstrap(before, after, resamples=resamples, seed=seed)
    discordant = None
    p_value = p_boot
    if binary:
        b, c_, p_value = stats.mcnemar(before, after, mid_p=mid_p)
        discordant = (b, c_)
    worse = [
        FlippedSample(s, x, y)
        for s, x, y in zip(paired["sample_id"], before, after, strict=True)
        if y < x
    ]
    better = [
        FlippedSample(s, x, y)
        for s, x, y in zip(paired["sample_id"], before, after, strict=True)
        if y > x
    ]
    # Largest drops first: those are the samples to read.
    worse.sort(key=lambda f: (f.current - f.baseline, f.sample_id))
    better.sort(key=lambda f: (f.baseline - f.current, f.sample_id))
    significant = p_value < alpha
    return MetricComparison(
        **common,
        baseline=stats.mean(before),
        current=stats.mean(after),
        delta=delta,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        regressed=significant and delta < -limit,
        improved=significant and delta > limit,
        worse=worse,
        better=better,
        discordant=discordant,
    )


def report_json_text(report: RegressionReport) -> str:
    """The report as indented JSON text."""
    return json.dumps(report.to_json(), indent=2, sort_keys=False)
