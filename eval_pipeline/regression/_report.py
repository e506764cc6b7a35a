"""The regression stage: compare the store with the pinned baseline; write the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eval_pipeline.regression._baselines import BaselineError, baseline_name, load_baseline
from eval_pipeline.regression._run_vs_baseline import (
    RegressionReport,
    compare_runs,
    report_json_text,
)
from eval_pipeline.storage import Store, atomic_write_text


@dataclass(frozen=True)
class RegressionOutcome:
    """A partition's verdict, in the shape of the ``aggregates_regression`` check.

    ``metadata`` always holds ``baseline`` (str) and ``regressed_metrics`` (comma
    separated, empty when none), plus ``<metric>/delta`` and ``<metric>/p_value`` (floats)
    for every metric compared.
    """

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    report: RegressionReport | None = None


def _compare_store(
    root: str | Path, store: Store, name: str, models=None, datasets=None
) -> RegressionReport:
    base = load_baseline(root, name)
    current = store.scan("scores").collect()
    if models is not None:
        current = current.filter(pl.col("model").is_in(models))
    if datasets is not None:
        current = current.filter(pl.col("dataset").is_in(datasets))
    return compare_runs(
        base.scores,
        current,
        alpha=base.alpha,
        threshold=base.threshold,
        thresholds=base.thresholds,
        baseline_name=base.name,
        current_name=str(store.root),
    )


def partition_outcome(
    root: str | Path, store: Store, model: str, dataset: str, name: str | None = None
) -> RegressionOutcome:
    """Compare one model x dataset with the baseline ``name`` (default: :func:`baseline_name`).

    Passes, saying so, when there is no such baseline or it does not cover the partition:
    a missing reference is not a regression.
    """
    name = name or baseline_name()
    empty = {"baseline": name, "regressed_metrics": ""}
    try:
        report = _compare_store(root, store, name, models=[model], datasets=[dataset])
    except BaselineError as exc:
        return RegressionOutcome(True, f"not compared: {exc}", empty)
    comparisons = report.for_partition(model, dataset)
    if not comparisons:
        return RegressionOutcome(
            True,
            f"baseline {name!r} has no scores for {dataset}|{model}; nothing compared",
            empty,
            report,
        )
    metadata: dict[str, Any] = dict(empty)
    for c in comparisons:
        metadata[f"{c.metric}/delta"] = float(c.delta) if c.delta is not None else float("nan")
        metadata[f"{c.metric}/p_value"] = (
            float(c.p_value) if c.p_value is not None else float("nan")
        )
    regressed = [c for c in comparisons if c.regressed]
    metadata["regressed_metrics"] = ",".join(c.metric for c in regressed)
    if regressed:
        parts = [
            f"{c.metric} {c.baseline:.3f} -> {c.current:.3f} (delta {c.delta:+.3f}, p={c.p_value:.2g}, "
            f"{len(c.worse)} samples worse)"
            for c in regressed
        ]
        return RegressionOutcome(
            False, f"regression against baseline {name!r}: " + "; ".join(parts), metadata, report
        )
    summary = ", ".join(f"{c.metric} {c.delta:+.3f}" for c in comparisons if c.delta is not None)
    return RegressionOutcome(
        True,
        f"no regression against baseline {name!r} ({len(comparisons)} metrics: {summary})",
        metadata,
        report,
    )


def regression_report(
    root: str | Path, store: Store, name: str | None = None
) -> tuple[RegressionReport | None, str]:
    """Compare every partition in the store with the baseline.

    Returns:
        ``(report, note)``: the report, or None with a note saying why there is none.
    """
    name = name or baseline_name()
    try:
        return _compare_store(root, store, name), ""
    except BaselineError as exc:
        return None, str(exc)


def write_report(
    store: Store, report: RegressionReport | None, note: str = "", stem: str = "regression"
) -> tuple[Path, Path, str]:
    """Write ``<store>/reports/<stem>.md`` and ``.json`` atomically.

    Returns:
        The Markdown path, the JSON path and the Markdown text.
    """
    if report is None:
        markdown = f"# Regression report\n\nNot compared: {note}\n"
        json_text = '{"baseline": null, "regressed": false, "note": ' + _quote(note) + "}"
    else:
        markdown = report.to_markdown()
        json_text = report_json_text(report)
    folder = store.reports_dir
    md_path, json_path = folder / f"{stem}.md", folder / f"{stem}.json"
    atomic_write_text(md_path, markdown)
    atomic_write_text(json_path, json_text + "\n")
    return md_path, json_path, markdown


def _quote(text: str) -> str:
    import json

    return json.dumps(text)
