"""The HTML report: the leaderboard as a table plus SVG plots, in one folder.

``<store>/reports/leaderboard/index.html`` with ``score_by_model.svg`` (each dataset's
primary metric per model, with 95% CI whiskers), ``cost_vs_score.svg`` and
``latency.svg`` (p50 bars with p95 whiskers) beside it. The plots are SVG text written by
:mod:`eval_pipeline.report._svg`: no plotting library is imported, and every bar and point
shows its numbers on hover.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.report._svg import Bar, Panel, Point, chart, message
from eval_pipeline.storage import atomic_write_text

PLOTS = ("score_by_model.svg", "cost_vs_score.svg", "latency.svg")


@dataclass(frozen=True)
class HtmlReport:
    """Where the report was written."""

    index: Path
    images: list[Path]


def _save(svg: str, path: Path) -> None:
    # Written to a temporary name and renamed: a reader never sees half a plot.
    atomic_write_text(path, svg)


def scale_groups(board: pl.DataFrame) -> list[tuple[str, tuple[float, float], list[str]]]:
    """Datasets grouped by the scale of their primary metric, one plot axis per group.

    0-1 metrics share one axis, 1-5 judge ratings another; a metric of any other range
    gets an axis of its own, so no axis mixes units.

    Returns:
        ``(title, (low, high), datasets)`` per group, 0-1 first.
    """
    from eval_pipeline.report._explorer import metric_scale

    groups: dict[str, tuple[str, tuple[float, float], list[str]]] = {}
    for dataset in sorted(set(board["dataset"])):
        rows = board.filter(pl.col("dataset") == dataset)
        metric = rows["metric"][0]
        low, high, kind = metric_scale(metric, rows["mean"].to_list())
        key = kind if kind in ("0-1", "1-5") else f"range:{dataset}"
        title = {"0-1": "0-1 metrics", "1-5": "1-5 ratings"}.get(kind, f"{dataset} ({metric})")
        groups.setdefault(key, (title, (low, high), []))[2].append(dataset)
    order = {"0-1": 0, "1-5": 1}
    return [groups[k] for k in sorted(groups, key=lambda k: (order.get(k, 2), k))]


# What a plot can show readably; the explorer shows every partition.
MAX_PLOT_MODELS = 8
MAX_PLOT_DATASETS = 12
MAX_ANNOTATED_POINTS = 40
MAX_TABLE_ROWS = 500


def readable(board: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """The partitions a plot shows, and a note when some were left out.

    At most :data:`MAX_PLOT_MODELS` models (the best by their mean primary metric) and
    :data:`MAX_PLOT_DATASETS` datasets (those the most of them evaluated), so a grid of
    thousands of partitions still draws in seconds and reads at a glance.
    """
    rows = board.filter(pl.col("mean").is_not_null())
    models = rows["model"].n_unique()
    datasets = rows["dataset"].n_unique()
    if models <= MAX_PLOT_MODELS and datasets <= MAX_PLOT_DATASETS:
        return rows, ""
    top_models = (
        rows.group_by("model")
        .agg(pl.col("mean").mean())
        .sort(["mean", "model"], descending=[True, False])
        .head(MAX_PLOT_MODELS)["model"]
    )
    rows = rows.filter(pl.col("model").is_in(top_models.implode()))
    top_datasets = (
        rows.group_by("dataset")
        .agg(pl.len().alias("n"))
        .sort(["n", "dataset"], descending=[True, False])
        .head(MAX_PLOT_DATASETS)["dataset"]
    )
    rows = rows.filter(pl.col("dataset").is_in(top_datasets.implode()))
    note = (
        f" (top {rows['model'].n_unique()} of {models} models, "
        f"{rows['dataset'].n_unique()} of {datasets} datasets; the explorer shows all)"
    )
    return rows, note


def plot_scores(board: pl.DataFrame, path: Path) -> None:
    """Grouped bars per dataset, one bar per model, 95% CI as whiskers.

    One panel per metric scale (see :func:`scale_groups`): 0-1 metrics and 1-5 judge
    ratings never share an axis. Large grids show their best models (see :func:`readable`).
    """
    rows, note = readable(board)
    if rows.height == 0:
        _save(message("no scores yet"), path)
        return
    cells = {(r["model"], r["dataset"]): r for r in rows.iter_rows(named=True)}
    metric_of = {r["dataset"]: r["metric"] for r in cells.values()}
    models = sorted(set(rows["model"]))
    panels = []
    for title, (low, high), datasets in scale_groups(rows):
        bars = []
        for j, dataset in enumerate(datasets):
            for i, model in enumerate(models):
                row = cells.get((model, dataset))
                if row is None:
                    continue
                mean = row["mean"]
                ci_low = mean if row["ci_low"] is None else row["ci_low"]
                ci_high = mean if row["ci_high"] is None else row["ci_high"]
                label = (
                    f"{model} {dataset} {row['metric']}: {mean:.3f} [{ci_low:.3f}, {ci_high:.3f}]"
                )
                bars.append(Bar(j, i, mean, ci_low, ci_high, label))
        categories = [f"{d}\n({metric_of[d]})" for d in datasets]
        # Bars start at the scale's floor (1 for a 1-5 rating), not at zero.
        panels.append(Panel(title, (low, high), categories=categories, bars=bars))
    widths = [max(1, len(p.categories)) * max(90.0, 22.0 * len(models)) for p in panels]
    svg = chart(
        f"Score by model and dataset{note}",
        panels,
        y_label="primary metric (mean, 95% CI)",
        legend=models,
        panel_widths=widths,
    )
    _save(svg, path)


def plot_cost(board: pl.DataFrame, path: Path) -> None:
    """Scatter of each partition's total cost against its primary metric, per scale.

    Every partition is a point; a few dozen or fewer get their dataset's name, more
    would be unreadable.
    """
    rows = board.filter(pl.col("mean").is_not_null())
    annotate = rows.height <= MAX_ANNOTATED_POINTS
    if rows.height == 0:
        _save(message("no scores yet"), path)
        return
    models = sorted(set(rows["model"]))
    series = {m: i for i, m in enumerate(models)}
    panels = []
    for title, (low, high), datasets in scale_groups(rows):
        part = rows.filter(pl.col("dataset").is_in(datasets))
        points = [
            Point(
                cost,
                mean,
                series[model],
                f"{model} {dataset}: {mean:.3f} at ${cost:.4f}",
                dataset if annotate else "",
            )
            for model, dataset, cost, mean in part.select(
                "model", "dataset", "cost_usd", "mean"
            ).iter_rows()
        ]
        panels.append(Panel(title, (low, high), points=points, x_label="cost (USD)"))
    svg = chart(
        "Cost against score",
        panels,
        y_label="primary metric",
        legend=models[:MAX_PLOT_MODELS],
    )
    _save(svg, path)


def plot_latency(aggregates: pl.DataFrame, path: Path) -> None:
    """Latency p50 per model x dataset, with a whisker up to p95.

    A large grid shows one bar per model instead (the median of its partitions' p50s, the
    highest p95), at most :data:`MAX_PLOT_MODELS` x :data:`MAX_PLOT_DATASETS` bars.
    """
    rows = (
        aggregates.group_by("model", "dataset")
        .agg(pl.col("latency_p50_s").first(), pl.col("latency_p95_s").first())
        .drop_nulls()
        .sort("model", "dataset")
    )
    if rows.height > MAX_PLOT_MODELS * MAX_PLOT_DATASETS:
        rows = (
            rows.group_by("model")
            .agg(pl.col("latency_p50_s").median(), pl.col("latency_p95_s").max())
            .sort("latency_p50_s", "model")
            .head(MAX_PLOT_MODELS * MAX_PLOT_DATASETS)
            .with_columns(pl.lit("all datasets").alias("dataset"))
        )
    if rows.height == 0:
        _save(message("no latencies yet"), path)
        return
    bars, categories = [], []
    for i, (model, dataset, p50, p95) in enumerate(
        rows.select("model", "dataset", "latency_p50_s", "latency_p95_s").iter_rows()
    ):
        categories.append(f"{model}\n{dataset}")
        bars.append(
            Bar(
                i,
                0,
                p50,
                p50,
                max(p50, p95),
                f"{model} {dataset}: p50 {p50:.3f} s, p95 {p95:.3f} s",
            )
        )
    high = max(max(b.high for b in bars), 1e-9)
    panel = Panel("", (0.0, high), categories=categories, bars=bars)
    svg = chart(
        "Latency",
        [panel],
        y_label="seconds per request (p50, whisker p95)",
        panel_widths=[max(240.0, 70.0 * len(categories))],
    )
    _save(svg, path)


def write_html_report(board: pl.DataFrame, aggregates: pl.DataFrame, folder: Path) -> HtmlReport:
    """Render the leaderboard and its plots into ``folder``.

    Args:
        board: The leaderboard table (one row per model x dataset, primary metric).
        aggregates: The aggregates of the same partitions (for latency percentiles).
        folder: Output folder; created when missing.

    Returns:
        The index page and image paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images = [folder / name for name in PLOTS]
    plot_scores(board, images[0])
    plot_cost(board, images[1])
    plot_latency(aggregates, images[2])
    rows = []
    for r in board.head(MAX_TABLE_ROWS).iter_rows(named=True):
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        if r.get("held"):
            mean += " (held)"
        ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        latency = "-" if r["latency_p50_s"] is None else f"{r['latency_p50_s']:.3f}"
        cells = [
            r["model"],
            r["dataset"],
            r["metric"],
            str(r["n"]),
            mean,
            ci,
            str(r["error_count"]),
            f"{r['cost_usd']:.4f}",
            latency,
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>eval_pipeline leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+3){{text-align:left}}
img{{max-width:100%;margin:1em 0;display:block}}</style></head><body>
<h1>Leaderboard</h1>
<p>Each dataset's primary metric per model: mean with a seeded bootstrap 95% CI. A cell
marked <em>(held)</em> regressed against the pinned baseline in its latest run: it shows the
numbers it last passed with until a passing run releases it (the regression report has the
regressed run).</p>
<table><thead><tr><th>model</th><th>dataset</th><th>metric</th><th>n</th><th>mean</th><th>95% CI</th>
<th>errors</th><th>cost $</th><th>latency p50 s</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{"" if board.height <= MAX_TABLE_ROWS else f"<p>First {MAX_TABLE_ROWS} of {board.height} rows; every row is in the leaderboard table and the results explorer.</p>"}
<h2>Score by model and dataset</h2><img src="{PLOTS[0]}" alt="score by model and dataset with 95% CI">
<h2>Cost against score</h2><img src="{PLOTS[1]}" alt="cost against score">
<h2>Latency</h2><img src="{PLOTS[2]}" alt="latency p50 and p95">
</body></html>
"""
    index = folder / "index.html"
    atomic_write_text(index, page)
    return HtmlReport(index=index, images=images)
