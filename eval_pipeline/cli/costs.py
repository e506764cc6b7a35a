"""``costs``: spend by model, provider or partition (generation runs and judge calls)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from eval_pipeline.cli._common import EXIT_NO_DATA, EXIT_OK, catalog_with_adapters, emit, roots
from eval_pipeline.report import SPEND_SCHEMA, judge_spend
from eval_pipeline.storage import Store


def costs(args: argparse.Namespace) -> int:
    """Print spend over a period, grouped by ``--by``."""

    def when(text: str | None, default: datetime) -> datetime:
        if not text:
            return default
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"not an ISO date or time: {text!r} (e.g. 2026-11-01 or 2026-11-01T12:00)"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    since = when(args.since, datetime.min.replace(tzinfo=UTC))
    until = when(args.until, datetime.now(UTC))
    root, store_root = roots(args)
    catalog = catalog_with_adapters(root, store_root)
    spend = pl.concat([_generation_spend(), judge_spend(Store(store_root))], how="vertical_relaxed")
    spend = spend.filter((pl.col("time") >= since) & (pl.col("time") <= until))
    providers = {slug: m.provider for slug, m in catalog.models.items()}
    spend = spend.with_columns(
        pl.col("model").replace_strict(providers, default="unknown").alias("provider")
    )
    if spend.height == 0:
        print("eval-pipeline: no spend recorded in that period", file=sys.stderr)
        return EXIT_NO_DATA
    keys = {
        "model": ["model", "provider"],
        "provider": ["provider"],
        "partition": ["model", "role", "partition"],
    }[args.by]
    table = (
        spend.group_by(keys)
        .agg(
            pl.col("requests").sum(),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("cost_usd").sum(),
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
        )
        .sort("cost_usd", descending=True)
    )
    emit(table, args.json)
    return EXIT_OK


def _generation_spend() -> pl.DataFrame:
    """New spend of every recorded ``generations`` materialization (cached rows cost nothing)."""
    rows = []
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            records: list[dg.EventLogRecord] = []
            cursor: str | None = None
            while True:  # the instance hands out at most 10000 records per call
                page = instance.fetch_materializations(
                    dg.AssetKey("generations"), limit=5000, cursor=cursor
                )
                records.extend(page.records)
                if not page.has_more:
                    break
                cursor = page.cursor
            for record in records:
                mat = record.asset_materialization
                if mat is None:
                    continue
                meta = {k: _number(v.value) for k, v in mat.metadata.items()}
                partition = str(mat.partition or "")
                rows.append(
                    {
                        "time": datetime.fromtimestamp(record.timestamp, UTC),
                        "model": partition.partition("|")[2],
                        "role": "generation",
                        "partition": partition,
                        "input_tokens": int(meta.get("input_tokens", 0)),
                        "output_tokens": int(meta.get("output_tokens", 0)),
                        "cost_usd": meta.get("cost_usd", 0.0),
                        "requests": int(meta.get("model_calls", 0)),
                    }
                )
    return pl.DataFrame(rows, schema=SPEND_SCHEMA)


def _number(value: object) -> float:
    """A numeric metadata value; anything else (text, a path, a table) counts as 0."""
    return float(value) if isinstance(value, int | float) else 0.0
