"""The leaderboard: every partition's primary metric in one table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.schemas import LEADERBOARD
from eval_pipeline.storage import Store

if TYPE_CHECKING:  # the regression package is imported on use (it loads the paired tests)
    from eval_pipeline.regression import Hold


def build_leaderboard(catalog: Catalog, store: Store, holds: Sequence[Hold] = ()) -> pl.DataFrame:
    """One row per model x dataset with the dataset's primary metric; written to the store.

    Partitions of models or datasets no longer in the catalog are left out. A held cell
    (``holds``: its latest regression verdict failed) shows the numbers it last passed
    with, ``held`` true, or no row when it never passed (see
    :func:`eval_pipeline.regression.published_aggregates`). Only the leaderboard's columns
    of the stored aggregates are read (a dozen per metric and partition); the rows are
    filtered after the read, because a filter pushed into the scan is evaluated file by
    file: 11.4 s instead of 1.6 s over 10,000 partition files.
    """
    from eval_pipeline.regression import HELD_COLUMN, published_aggregates

    primary = {name: spec.primary for name, spec in catalog.dataset_specs.items()}
    keep = pl.DataFrame(
        {"dataset": list(primary), "metric": list(primary.values())},
        schema={"dataset": pl.String, "metric": pl.String},
    )
    latest = (
        store.scan("aggregates")
        .select([c for c in LEADERBOARD.names() if c != HELD_COLUMN])
        .collect()
        .filter(pl.col("model").is_in(list(catalog.models)))
    )
    published, _ = published_aggregates(store, latest, holds)
    board = (
        published.select(LEADERBOARD.names())
        .join(keep, on=["dataset", "metric"], how="inner")
        .sort(["dataset", "mean", "model"], descending=[False, True, False], nulls_last=True)
    )
    store.write("leaderboard", board)
    return board


def write_leaderboard_report(
    catalog: Catalog, store: Store, board: pl.DataFrame, holds: Sequence[Hold] = ()
) -> Path:
    """Render the reports of the ``leaderboard`` asset; returns the PNG report's index.

    Writes ``<store>/reports/leaderboard/index.html`` with PNG plots (for Markdown and
    GitHub summaries) and the static results explorer
    ``<store>/reports/explorer/index.html`` (see :func:`write_explorer`). Both show a held
    cell's last passing numbers, as the leaderboard does.
    """
    from eval_pipeline.regression import published_aggregates
    from eval_pipeline.report import write_html_report

    aggregates, _ = published_aggregates(
        store,
        store.scan("aggregates").collect().filter(pl.col("model").is_in(list(catalog.models))),
        holds,
    )
    report = write_html_report(board, aggregates, store.reports_dir / "leaderboard")
    write_explorer(catalog, store, aggregates=aggregates)
    return report.index


def explorer_dir(store: Store) -> Path:
    """Where the results explorer is written by default: ``<store>/reports/explorer``."""
    return store.reports_dir / "explorer"


def write_explorer(
    catalog: Catalog,
    store: Store,
    folder: Path | None = None,
    *,
    suites: Mapping[str, Sequence[str]] | None = None,
    aggregates: pl.DataFrame | None = None,
) -> Path:
    """Write the static HTML results explorer of every partition in ``store``.

    Heatmap of each dataset's primary metric, per-sample drill-down, run-to-run diffs
    (the paired tests of :func:`eval_pipeline.regression.compare_runs` between recent
    runs and against every pinned baseline under the catalog's root) and trends. Only
    the catalog's models and datasets are shown.

    Args:
        catalog: Primary metrics, the models to show, and where the baselines are.
        store: The results.
        folder: Output folder (default :func:`explorer_dir`).
        suites: Named groups of datasets for the heatmap's suite filter (default: the
            catalog's ``suite:`` groups).
        aggregates: The aggregates the heatmap and each cell's summary show (default: the
            store's latest; the leaderboard passes the published ones, held cells as they
            last passed). Run histories and per-sample drill-downs show every kept run.

    Returns:
        The explorer's ``index.html``.
    """
    if suites is None:
        suites = {name: catalog.suite(name) for name in catalog.suite_names}
    from eval_pipeline.regression import BaselineError, baseline_names, compare_runs, load_baseline
    from eval_pipeline.report import ExplorerInput, write_explorer_files

    baselines = {}
    for name in baseline_names(catalog.root):
        try:
            baselines[name] = load_baseline(catalog.root, name).scores
        except BaselineError:
            continue  # a damaged baseline: the explorer shows the others

    def compare(a: pl.DataFrame, b: pl.DataFrame) -> list[dict]:
        return compare_runs(a, b).to_json()["comparisons"]

    setup = ExplorerInput(
        primary={name: spec.primary for name, spec in catalog.dataset_specs.items()},
        models=list(catalog.models),
        suites=suites or {},
        baselines=baselines,
        compare=compare,
        aggregates=aggregates,
    )
    return write_explorer_files(store, folder or explorer_dir(store), setup)


def leaderboard_markdown(board: pl.DataFrame, max_rows: int | None = None) -> str:
    """Render the leaderboard as a Markdown table.

    With ``max_rows``, only the first rows are shown and a last line says how many more
    there are (asset metadata stays small however large the grid).
    """
    shown = board if max_rows is None else board.head(max_rows)
    lines = [
        "| model | dataset | metric | answer | n | mean | 95% CI | errors | output tokens | cost $ |",
        "|---|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in shown.iter_rows(named=True):
        mode = r.get("answer_mode")
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        if mode == "not_applicable":
            mean = "n/a"
        if r.get("held"):
            # A held cell: the numbers it last passed with (the regression report has why).
            mean += " (held)"
        ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['metric']} | {answer_label(mode)} | {r['n']} | "
            f"{mean} | {ci} | {r['error_count']} | {r['output_tokens']} | {r['cost_usd']:.4f} |"
        )
    if shown.height < board.height:
        lines.append(f"\n… and {board.height - shown.height} more rows (the full table: `path`).")
    return "\n".join(lines)


ANSWER_LABELS = {
    "loglikelihood": "log-likelihood",
    "generate": "generated",
    "not_applicable": "not applicable",
}


def answer_label(mode: str | None) -> str:
    """How a cell's number was obtained, in words (``-`` for rows written before modes)."""
    return ANSWER_LABELS.get(mode or "", "-")
