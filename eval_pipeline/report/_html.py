"""The HTML report: the leaderboard as a table plus PNG plots, in one folder.

``<store>/reports/leaderboard/index.html`` with ``score_by_model.png`` (each dataset's
primary metric per model, with 95% CI error bars), ``cost_vs_score.png`` and
``latency.png`` (p50 bars with p95 whiskers) beside it. Matplotlib is imported here
only, with the non-interactive Agg backend, so nothing else pays for it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

# Any: matplotlib axes (see _subplots).
from typing import TYPE_CHECKING, Any

import polars as pl

from eval_pipeline.storage import atomic_path, atomic_write_text

if TYPE_CHECKING:  # matplotlib is imported on use (startup cost)
    from matplotlib.figure import Figure

PLOTS = ("score_by_model.png", "cost_vs_score.png", "latency.png")


@dataclass(frozen=True)
class HtmlReport:
    """Where the report was written."""

    index: Path
    images: list[Path]


# ``Any``: one Axes or an array of them (by ``squeeze``, rows and columns), and the keywords
# are matplotlib's own (``squeeze``, ``gridspec_kw``), as ``Figure.subplots`` takes them.
def _subplots(*args: int, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes, without pyplot (no global state, no GUI backend).

    Every figure lays itself out (``constrained``), so it is drawn once when saved, not
    twice as ``bbox_inches="tight"`` would.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(*args, **kwargs)


def _save(fig: Figure, path: Path) -> None:
    # Rendered to a temporary name and renamed: a reader never sees half a PNG.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def _empty(path: Path, message: str) -> None:
    fig, ax = _subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    _save(fig, path)


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


def _limits(low: float, high: float) -> tuple[float, float]:
    pad = 0.04 * (high - low)
    return low - (pad if low != 0 else 0), high + pad


def _legend(fig: Figure, colours: dict[str, str]) -> None:
    # One legend for every panel, outside them: no panel's bars hide behind it.
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=m) for m, c in colours.items()]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=min(6, len(handles)))


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
    """Grouped bars per dataset, one bar per model, 95% CI as error bars.

    One panel per metric scale (see :func:`scale_groups`): 0-1 metrics and 1-5 judge
    ratings never share an axis. Large grids show their best models (see :func:`readable`).
    """
    rows, note = readable(board)
    if rows.height == 0:
        _empty(path, "no scores yet")
        return
    cells = {(r["model"], r["dataset"]): r for r in rows.iter_rows(named=True)}
    metric_of = {r["dataset"]: r["metric"] for r in cells.values()}
    groups = scale_groups(rows)
    models = sorted(set(rows["model"]))
    width = 0.8 / len(models)
    widths = [max(1.0, len(ds)) for _, _, ds in groups]
    fig, axes = _subplots(
        1,
        len(groups),
        figsize=(max(4.5, 1.6 * sum(widths) + 1.2 * len(groups)), 3.4),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for ax, (title, (low, high), datasets) in zip(axes[0], groups, strict=True):
        for i, model in enumerate(models):
            xs, ys, lo, hi = [], [], [], []
            for j, dataset in enumerate(datasets):
                row = cells.get((model, dataset))
                if row is None:
                    continue
                mean = row["mean"]
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(mean)
                lo.append(max(0.0, mean - (row["ci_low"] if row["ci_low"] is not None else mean)))
                hi.append(max(0.0, (row["ci_high"] if row["ci_high"] is not None else mean) - mean))
            if not xs:
                continue
            # Bars start at the scale's floor (1 for a 1-5 rating), not at zero.
            ax.bar(
                xs,
                [y - low for y in ys],
                bottom=low,
                width=width,
                yerr=[lo, hi],
                capsize=3,
                label=model,
                color=colours[model],
            )
        ax.set_ylim(*_limits(low, high))
        ax.set_xticks(range(len(datasets)))
        ax.set_xticklabels([f"{d}\n({metric_of[d]})" for d in datasets], fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("primary metric (mean, 95% CI)")
    _legend(fig, colours)
    fig.suptitle(f"Score by model and dataset{note}")
    _save(fig, path)


def plot_cost(board: pl.DataFrame, path: Path) -> None:
    """Scatter of each partition's total cost against its primary metric, per scale.

    Every partition is a point; a few hundred or fewer get their dataset's name, more
    would be unreadable.
    """
    rows = board.filter(pl.col("mean").is_not_null())
    annotate = rows.height <= MAX_ANNOTATED_POINTS
    if rows.height == 0:
        _empty(path, "no scores yet")
        return
    groups = scale_groups(rows)
    fig, axes = _subplots(1, len(groups), figsize=(4.5 * len(groups), 3.4), squeeze=False)
    models = sorted(set(rows["model"]))
    colour_of = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for ax, (title, (low, high), datasets) in zip(axes[0], groups, strict=True):
        part = rows.filter(pl.col("dataset").is_in(datasets))
        ax.scatter(
            part["cost_usd"].to_list(),
            part["mean"].to_list(),
            color=[colour_of[m] for m in part["model"]],
            s=12 if part.height > MAX_ANNOTATED_POINTS else 24,
        )
        if annotate:
            for cost, mean, dataset in part.select("cost_usd", "mean", "dataset").iter_rows():
                ax.annotate(
                    dataset, (cost, mean), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        ax.set_ylim(*_limits(low, high))
        ax.set_xlabel("cost (USD)")
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("primary metric")
    _legend(fig, {m: colour_of[m] for m in models[:MAX_PLOT_MODELS]})
    fig.suptitle("Cost against score")
    _save(fig, path)


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
        _empty(path, "no latencies yet")
        return
    labels = [f"{m}\n{d}" for m, d in rows.select("model", "dataset").iter_rows()]
    p50 = rows["latency_p50_s"].to_list()
    p95 = rows["latency_p95_s"].to_list()
    fig, ax = _subplots(figsize=(max(4.5, 0.9 * len(labels) + 1), 3.2))
    ax.bar(
        range(len(labels)),
        p50,
        yerr=[[0] * len(p50), [max(0.0, b - a) for a, b in zip(p50, p95, strict=True)]],
        capsize=3,
    )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("seconds per request (p50, whisker p95)")
    ax.set_title("Latency")
    _save(fig, path)


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
