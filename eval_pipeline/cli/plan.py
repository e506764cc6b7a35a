"""``plan``: what a run will send and cost, per model, dataset and route, before any request."""

from __future__ import annotations

import argparse

import polars as pl

from eval_pipeline.cli._common import (
    EXIT_OK,
    catalog_with_adapters,
    emit,
    roots,
    selected_partitions,
)
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions
from eval_pipeline.stages.plan import plan_partition
from eval_pipeline.storage import Store


def plan(args: argparse.Namespace) -> int:
    """Print one row per model x dataset and a total per route; nothing is sent."""
    root, store_root = roots(args)
    catalog = catalog_with_adapters(root, store_root)
    store = Store(store_root)
    models, datasets = selected_partitions(args, catalog)
    for d in datasets:
        # The dataset tables are what generation reads; writing them sends nothing.
        if not store.exists("dataset_samples", dataset=d):
            build_prompt_versions(catalog, store, d)
            build_dataset_samples(catalog, store, d)
    limit = None if args.full else args.limit
    rows = [
        plan_partition(
            catalog,
            store,
            m,
            d,
            sample_limit=limit,
            batch=args.batch,
            use_cache=not args.no_cache,
        ).as_dict()
        for m in models
        for d in datasets
        if not catalog.not_applicable_reason(m, d)
    ]
    frame = pl.DataFrame(rows)
    if frame.height:
        totals = frame.group_by("route", maintain_order=True).agg(
            pl.lit("(total)").alias("model"),
            pl.lit("").alias("dataset"),
            *(
                pl.col(c).sum()
                for c in (
                    "requests",
                    "cached",
                    "to_send",
                    "input_tokens",
                    "output_tokens_expected",
                    "output_tokens_worst",
                    "cost_expected_usd",
                    "cost_worst_usd",
                )
            ),
            pl.lit("").alias("basis"),
        )
        frame = pl.concat([frame, totals.select(frame.columns)])
        frame = frame.with_columns(pl.col("cost_expected_usd", "cost_worst_usd").round(6))
    emit(frame, args.json)
    return EXIT_OK
