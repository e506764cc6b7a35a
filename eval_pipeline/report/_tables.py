"""Tables behind the ``results``, ``samples`` and ``costs`` commands (plain polars)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl

from eval_pipeline.core.keys import PROBLEM_SEPARATOR
from eval_pipeline.core.schemas import table_schema
from eval_pipeline.storage import Store


def _filter(
    frame: pl.DataFrame, models: list[str] | None, datasets: list[str] | None
) -> pl.DataFrame:
    if models:
        frame = frame.filter(pl.col("model").is_in(models))
    if datasets:
        frame = frame.filter(pl.col("dataset").is_in(datasets))
    return frame


def results_table(
    store: Store,
    *,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    metrics: list[str] | None = None,
) -> pl.DataFrame:
    """Aggregates per model x dataset x metric; with ``tags``, per slice instead.

    Columns: model, dataset, [slice,] metric, n, mean, stderr, ci_low, ci_high (and, for
    whole partitions, answer_mode, cost_usd, error_count, latency_p50_s). ``answer_mode``
    says how the number was obtained (``loglikelihood``, ``generate``, or
    ``not_applicable`` with n = 0 and no mean).
    """
    if tags:
        frame = _filter(store.scan("slice_aggregates").collect(), models, datasets)
        frame = frame.filter(pl.col("slice").is_in(tags))
        cols = ["model", "dataset", "slice", "metric", "n", "mean", "stderr", "ci_low", "ci_high"]
    else:
        frame = _filter(store.scan("aggregates").collect(), models, datasets)
        cols = [
            "model",
            "dataset",
            "metric",
            "n",
            "mean",
            "stderr",
            "ci_low",
            "ci_high",
            "answer_mode",
            "cost_usd",
            "error_count",
            "latency_p50_s",
        ]
    if metrics:
        frame = frame.filter(pl.col("metric").is_in(metrics))
    return frame.select(cols).sort([c for c in cols[:4] if c != "n"])


def samples_table(
    store: Store,
    model: str,
    dataset: str,
    *,
    sample_ids: list[str] | None = None,
    metric: str | None = None,
    below: float | None = None,
    limit: int | None = None,
) -> pl.DataFrame:
    """Per-sample inputs, outputs and scores of one partition.

    One row per sample: its fields (JSON), target, completion, error, and one column per
    metric. ``metric`` with ``below`` keeps samples scoring below that value (e.g. the
    failures: ``below=1``).

    Raises:
        FileNotFoundError: The partition has no generations.
    """
    gens = store.read("generations", dataset=dataset, model=model)
    scores = store.read_optional("scores", dataset=dataset, model=model)
    samples = store.read_optional("dataset_samples", dataset=dataset)
    # Several completions of a problem (``<problem>#<i>``) take their problem's sample row,
    # and its scores where they are the problem's (an lm-eval task's repeats).
    problem = pl.col("sample_id").str.split(PROBLEM_SEPARATOR).list.first().alias("_problem")
    frame = gens.select("sample_id", "completion", "error", "cost_usd", "latency_s").with_columns(
        problem
    )
    if samples is not None:
        frame = frame.join(
            samples.select(pl.col("sample_id").alias("_problem"), "fields", "target"),
            on="_problem",
            how="left",
            maintain_order="left",
        ).select(
            "sample_id",
            "_problem",
            "fields",
            "target",
            "completion",
            "error",
            "cost_usd",
            "latency_s",
        )
    if scores is not None and scores.height:
        wide = scores.pivot(
            on="metric", index="sample_id", values="value", aggregate_function="first"
        )
        by_problem = not set(wide["sample_id"]) & set(frame["sample_id"])
        frame = frame.join(
            wide,
            left_on="_problem" if by_problem else "sample_id",
            right_on="sample_id",
            how="left",
            maintain_order="left",
            suffix="_score",
        )
    frame = frame.drop("_problem", *[c for c in frame.columns if c == "sample_id_score"])
    if sample_ids:
        frame = frame.filter(pl.col("sample_id").is_in(sample_ids))
    if metric is not None:
        if metric not in frame.columns:
            known = sorted(set(scores["metric"])) if scores is not None else []
            raise KeyError(
                f"unknown metric {metric!r} for {dataset}|{model}; known: {', '.join(known)}"
            )
        if below is not None:
            frame = frame.filter(pl.col(metric) < below)
    return frame.head(limit) if limit else frame


# One row of spend: who was called, for which partition, what it cost.
SPEND_SCHEMA = table_schema(
    {
        "time": pl.Datetime("us", "UTC"),
        "model": pl.String,
        "role": pl.String,
        "partition": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "requests": pl.Int64,
    }
)


def judge_spend(store: Store) -> pl.DataFrame:
    """Spend on judge calls sent (not cached) by each kept ``judgements`` run.

    Each run in the store's history counts once, at the time it was written; a partition
    written before run history existed counts its latest file, at its modification time.
    """
    rows = []
    kept = {(e.dataset, e.model) for e in store.history_entries("judgements")}
    sources = [(e.path, e.written_at) for e in store.history_entries("judgements")]
    folder = store.table_dir("judgements")
    for path in sorted(folder.rglob("*.parquet")) if folder.exists() else []:
        dataset = path.parent.parent.name.removeprefix("dataset=")
        model = path.parent.name.removeprefix("model=")
        if (dataset, model) not in kept:
            sources.append((path, datetime.fromtimestamp(path.stat().st_mtime, UTC)))
    for path, when in sources:
        frame = pl.read_parquet(path).filter(~pl.col("cached"))
        for judge, group in frame.group_by("judge", maintain_order=True):
            rows.append(
                {
                    "time": when,
                    "model": judge[0],
                    "role": "judge",
                    "partition": f"{group['dataset'][0]}|{group['model'][0]}",
                    "input_tokens": int(group["input_tokens"].sum()),
                    "output_tokens": int(group["output_tokens"].sum()),
                    "cost_usd": float(group["cost_usd"].sum()),
                    "requests": group.height,
                }
            )
    return pl.DataFrame(rows, schema=SPEND_SCHEMA)


def frame_json(frame: pl.DataFrame) -> str:
    """Rows as a JSON list (datetimes as ISO strings)."""
    return json.dumps(frame.to_dicts(), indent=2, default=str)


def frame_markdown(frame: pl.DataFrame, floats: int = 4) -> str:
    """A Markdown table of ``frame`` (floats rounded, long text cut)."""
    if frame.width == 0:
        return ""
    head = "| " + " | ".join(frame.columns) + " |"
    rule = (
        "|"
        + "|".join("---:" if frame[c].dtype.is_numeric() else "---" for c in frame.columns)
        + "|"
    )
    lines = [head, rule]
    for row in frame.iter_rows():
        cells = []
        for v in row:
            if v is None:
                cells.append("-")
            elif isinstance(v, float):
                cells.append(f"{v:.{floats}f}")
            else:
                text = str(v).replace("\n", " ").replace("|", "\\|")
                cells.append(text if len(text) <= 80 else text[:77] + "...")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
