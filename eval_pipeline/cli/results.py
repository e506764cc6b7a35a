"""``leaderboard``, ``results``, ``samples`` and ``history``: tables read from the store."""

from __future__ import annotations

import argparse
import json
import sys

from eval_pipeline.catalog import load_catalog
from eval_pipeline.cli._common import EXIT_FAILED, EXIT_NO_DATA, EXIT_OK, emit, roots
from eval_pipeline.report import metric_history, results_table, samples_table
from eval_pipeline.stages import leaderboard_markdown
from eval_pipeline.storage import Store


def leaderboard(args: argparse.Namespace) -> int:
    """Print the stored leaderboard (exit 1 before the first run)."""
    _, store_root = roots(args)
    board = Store(store_root).read_optional("leaderboard")
    if board is None:
        print(
            "eval-pipeline: error: no leaderboard yet; run `eval-pipeline run` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(board.to_dicts(), indent=2) if args.json else leaderboard_markdown(board))
    return EXIT_OK


def results(args: argparse.Namespace) -> int:
    """Print the aggregates table, per slice with ``--tag``."""
    _, store_root = roots(args)
    table = results_table(
        Store(store_root),
        models=args.model,
        datasets=args.dataset,
        tags=args.tag,
        metrics=args.metric,
    )
    if table.height == 0:
        print(f"eval-pipeline: no results in {store_root} match the filters", file=sys.stderr)
        return EXIT_NO_DATA
    emit(table, args.json)
    return EXIT_OK


def samples(args: argparse.Namespace) -> int:
    """Print one partition's per-sample inputs, outputs and scores."""
    _, store_root = roots(args)
    try:
        table = samples_table(
            Store(store_root),
            args.model,
            args.dataset,
            sample_ids=args.ids,
            metric=args.metric,
            below=args.below,
            limit=args.limit or None,
        )
    except FileNotFoundError:
        print(
            f"eval-pipeline: nothing stored for {args.dataset}|{args.model} in {store_root}",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if table.height == 0:
        print("eval-pipeline: no samples match", file=sys.stderr)
        return EXIT_NO_DATA
    emit(table, args.json)
    return EXIT_OK


def history(args: argparse.Namespace) -> int:
    """Print a partition's metric over its kept runs."""
    root, store_root = roots(args)
    metric = args.metric
    if metric is None:
        catalog = load_catalog(root, load_rows=False)
        if args.dataset not in catalog.dataset_specs:
            raise KeyError(
                f"unknown dataset {args.dataset!r} (pass --metric for a dataset no longer in "
                f"the catalog); known: {', '.join(catalog.dataset_names)}"
            )
        metric = catalog.dataset_specs[args.dataset].primary
    table = metric_history(Store(store_root), args.model, args.dataset, metric)
    if table.height == 0:
        print(
            f"eval-pipeline: no kept runs of {args.dataset}|{args.model} with metric "
            f"{metric!r} in {store_root}",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    emit(table, args.json)
    return EXIT_OK
