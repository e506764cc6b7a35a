"""The leaderboard: every partition's primary metric in one table."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.schemas import LEADERBOARD
from eval_pipeline.storage import Store


def build_leaderboard(catalog: Catalog, store: Store) -> pl.DataFrame:
    """One row per model x dataset with the dataset's primary metric; written to the store.

    Partitions of models or datasets no longer in the catalog are left out.
    """
    primary = {name: spec.primary for name, spec in catalog.dataset_specs.items()}
    aggregates = store.scan("aggregates").collect()
    keep = pl.DataFrame(
        {"dataset": list(primary), "metric": list(primary.values())},
        schema={"dataset": pl.String, "metric": pl.String},
    )
    board = (
        aggregates.join(keep, on=["dataset", "metric"], how="inner")
        .filter(pl.col("model").is_in(list(catalog.models)))
        .select(LEADERBOARD.names())
        .sort(["dataset", "mean", "model"], descending=[False, True, False], nulls_last=True)
    )
    store.write("leaderboard", board)
    return board


def write_leaderboard_report(catalog: Catalog, store: Store, board: pl.DataFrame) -> Path:
    """Render ``board`` as ``<store>/reports/leaderboard/index.html`` with PNG plots.

    Returns:
        The index page's path.
    """
    from eval_pipeline.report import write_html_report

    aggregates = (
        store.scan("aggregates").collect().filter(pl.col("model").is_in(list(catalog.models)))
    )
    report = write_html_report(board, aggregates, store.reports_dir / "leaderboard")
    return report.index


def leaderboard_markdown(board: pl.DataFrame) -> str:
    """Render the leaderboard as a Markdown table."""
    lines = [
        "| model | dataset | metric | n | mean | 95% CI | errors | output tokens | cost $ |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in board.iter_rows(named=True):
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['metric']} | {r['n']} | {mean} | {ci} | "
            f"{r['error_count']} | {r['output_tokens']} | {r['cost_usd']:.4f} |"
        )
    return "\n".join(lines)
