"""The static HTML results explorer: one folder that opens from the file system.

Layout of ``<folder>``::

    index.html            the page: loads explorer.css, data/index.js, then explorer.js
    explorer.js/.css      the application (plain JS, shipped in this package; no CDN)
    data/index.js         window.__explorer_index({...}): datasets, models, one cell per
                          partition (primary metric, CI, n, cost, runs, a trend sparkline)
    data/p/<d>@<m>.js     window.__explorer_partition("<d>@<m>", {...}): every sample
                          (messages, output, target, scores with detail, judge verdicts,
                          tokens, latency, cost, cached), the partition's runs (trends),
                          the paired comparisons between its recent runs and baselines
                          and its judges' trust figures (:func:`trust_figures`)

Data files are JavaScript calls rather than JSON because browsers refuse ``fetch()`` of
``file://`` URLs; a ``<script>`` tag may load them. A partition's file is loaded only
when it is opened, so the page opens in time proportional to the partitions' count, not
their samples.

The explorer needs no statistics of its own: paired comparisons are computed here, by
the ``compare`` callable the caller passes (``regression.compare_runs``: McNemar or a
paired bootstrap), for every pair of a partition's last :data:`DIFF_RUNS` runs and each
baseline against each of them.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from itertools import combinations
from pathlib import Path

# Any: rows and the page's data as JSON (any JSON type).
from typing import Any

import polars as pl

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.schemas import TABLES
from eval_pipeline.storage import HistoryEntry, Store

# Runs per partition whose pairs are compared (n runs give n(n-1)/2 pairs).
DIFF_RUNS = 6
# Points of the trend sparkline kept in the index per partition.
SPARK_POINTS = 12
# A partition's separator in file names and links: slugs never contain it.
PARTITION_SEP = "@"
ASSETS = ("explorer.js", "explorer.css")

Compare = Callable[[pl.DataFrame, pl.DataFrame], list[dict[str, Any]]]

# Aggregate rows ``<metric>:<suffix>`` that say how far to trust a judge, by figure name.
TRUST_ROWS = {
    "position_bias": "position_bias",
    "human_agreement": "pairwise_human_agreement",
    "human_kappa": "pairwise_human_kappa",
    "agreement_alpha": "inter_judge_alpha",
    "agreement_kappa": "inter_judge_kappa",
    "agreement_spearman": "inter_judge_spearman",
}


@dataclass(frozen=True)
class ExplorerInput:
    """What the explorer shows beyond the store itself.

    Attributes:
        primary: Each dataset's primary metric.
        models: The models to show (None: every model in the store).
        suites: Named groups of datasets for the suite filter.
        baselines: Pinned baselines' scores by name (rows of the ``scores`` table).
        compare: Paired comparison of two score frames; returns one dict per metric
            (``MetricComparison`` fields). None: no run-to-run diffs.
        aggregates: The aggregates to show per cell (None: the store's latest).
    """

    primary: Mapping[str, str]
    models: Sequence[str] | None = None
    suites: Mapping[str, Sequence[str]] = field(default_factory=dict)
    baselines: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    compare: Compare | None = None
    aggregates: pl.DataFrame | None = None


def partition_id(dataset: str, model: str) -> str:
    """The stem of a partition's data file: ``<dataset>@<model>``."""
    return f"{dataset}{PARTITION_SEP}{model}"


def _num(value: Any) -> Any:
    # JSON has no NaN or infinity.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _js_call(function: str, *args: Any) -> str:
    text = ", ".join(
        json.dumps(a, separators=(",", ":"), ensure_ascii=False, default=str) for a in args
    )
    # "</script" inside a string would end an inline script; escape it everywhere.
    return f"{function}({text});\n".replace("</", "<\\/")


def metric_scale(
    metric: str, values: Sequence[float | None], *, rating: bool = False
) -> tuple[float, float, str]:
    """The range a metric is drawn on: ``(low, high, kind)``.

    0-1 metrics (accuracy, pass rates) on [0, 1], judge ratings on [1, 5] (``rating``:
    the metric is a judge's, whatever its values so far), anything else from 0 to its
    largest value; a heatmap colours each column on its own scale.
    """
    seen = [v for v in values if v is not None and math.isfinite(v)]
    if rating and all(1.0 <= v <= 5.0 for v in seen):
        return 1.0, 5.0, "1-5"
    if not seen or (min(seen) >= 0.0 and max(seen) <= 1.0):
        return 0.0, 1.0, "0-1"
    if min(seen) >= 1.0 and max(seen) <= 5.0:
        return 1.0, 5.0, "1-5"
    # Counts, lengths, scores in their own units: from zero (or below) to the largest.
    low, high = min(0.0, min(seen)), max(seen)
    return low, (high if high > low else low + 1.0), "range"


def _base_metric(metric: str) -> str:
    # A judge metric's variants (``helpfulness:calibrated``) share its 1-5 scale.
    return metric.split(":", 1)[0]


def _scan_history(store: Store, table: str) -> pl.DataFrame:
    """Every history entry of ``table`` in one frame, with ``run_id`` and ``written_at``."""
    entries = [e for e in store.history_entries(table)]
    if not entries:
        return pl.DataFrame(
            schema={**TABLES[table], "run_id": pl.String, "written_at": pl.Datetime("us", "UTC")}
        )
    frame = pl.scan_parquet([str(e.path) for e in entries], include_file_paths="_path").collect()
    info = pl.DataFrame(
        {
            "_path": [str(e.path) for e in entries],
            "run_id": [e.run_id for e in entries],
            "written_at": [e.written_at for e in entries],
        },
        schema={"_path": pl.String, "run_id": pl.String, "written_at": pl.Datetime("us", "UTC")},
    )
    return frame.join(info, on="_path", how="left").drop("_path")


def _messages(text: str | None) -> Any:
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError:
        return [{"role": "prompt", "content": text}]


def _samples(
    gens: pl.DataFrame,
    scores: list[dict[str, Any]],
    judgements: pl.DataFrame | None,
    targets: dict[str, tuple[str | None, list[str]]],
) -> list[dict[str, Any]]:
    # Rows as Python dicts once: per-call overhead of small frames dominates otherwise.
    by_sample_scores: dict[str, dict[str, list[Any]]] = {}
    for r in scores:
        by_sample_scores.setdefault(r["sample_id"], {})[r["metric"]] = [
            _num(r["value"]),
            r["detail"],
        ]
    by_sample_judged: dict[str, list[dict[str, Any]]] = {}
    if judgements is not None:
        cols = ["metric", "judge", "status", "score", "calibrated", "verdict", "reason", "problem"]
        for row in judgements.select("sample_id", *cols).iter_rows(named=True):
            sid = row.pop("sample_id")
            by_sample_judged.setdefault(sid, []).append({k: _num(v) for k, v in row.items()})
    out = []
    for r in gens.iter_rows(named=True):
        sid = r["sample_id"]
        target, tags = targets.get(sid, (None, []))
        out.append(
            {
                "id": sid,
                "tags": tags,
                "messages": _messages(r["messages"]),
                "output": r["completion"],
                "target": target,
                "error": r["error"],
                "finish": r["finish_reason"],
                "in": r["input_tokens"],
                "out": r["output_tokens"],
                "latency": _num(r["latency_s"]),
                "cost": _num(r["cost_usd"]),
                "cached": r["cached"],
                "prompt_version": r["prompt_version"],
                "scores": by_sample_scores.get(sid, {}),
                "judgements": by_sample_judged.get(sid, []),
            }
        )
    return out


def _aggregate_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    cols = ["metric", "n", "mean", "stderr", "ci_low", "ci_high", "pass_at_1"]
    return [
        {**{k: _num(r[k]) for k in cols}, "answer_mode": r.get("answer_mode")}
        for r in frame.iter_rows(named=True)
    ]


def _runs_by_partition(history: pl.DataFrame) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per ``(dataset, model)``: one entry per kept aggregates run, oldest first.

    Each entry has the run's metrics (mean, CI, n), cost, tokens and cache hit rate. One pass over the rows of every partition's history: per-partition frame operations
    cost more than the rows themselves at 10,000 partitions.
    """
    out: dict[tuple[str, str], dict[tuple[str, Any], dict[str, Any]]] = {}
    columns = ["dataset", "model", "run_id", "written_at", "metric", "mean", "ci_low", "ci_high"]
    columns += ["n", "cost_usd", "input_tokens", "output_tokens", "cache_hit_rate"]
    for r in history.select(columns).iter_rows(named=True):
        runs = out.setdefault((r["dataset"], r["model"]), {})
        run = runs.get((r["run_id"], r["written_at"]))
        if run is None:
            run = runs[(r["run_id"], r["written_at"])] = {
                "id": r["run_id"],
                "time": r["written_at"].isoformat(timespec="seconds"),
                "cost": _num(float(r["cost_usd"] or 0.0)),
                "tokens": int((r["input_tokens"] or 0) + (r["output_tokens"] or 0)),
                "cache_hit_rate": _num(r["cache_hit_rate"]),
                "metrics": {},
            }
        run["metrics"][r["metric"]] = [
            _num(r["mean"]),
            _num(r["ci_low"]),
            _num(r["ci_high"]),
            r["n"],
        ]
    return {
        key: sorted(runs.values(), key=lambda r: (r["time"], r["id"])) for key, runs in out.items()
    }


def _generations_for(gens: list[HistoryEntry], entry: HistoryEntry) -> HistoryEntry | None:
    """The generations a scores entry judged: the same run's, else the newest before it."""
    same = [g for g in gens if g.run_id == entry.run_id]
    if same:
        return same[-1]
    earlier = [g for g in gens if g.written_at <= entry.written_at]
    return earlier[-1] if earlier else None


def _diff(
    store: Store,
    dataset: str,
    model: str,
    latest_scores: pl.DataFrame | None,
    latest_gens: pl.DataFrame,
    setup: ExplorerInput,
) -> dict[str, Any]:
    """Paired comparisons among the partition's recent runs and against each baseline."""
    entries = store.history("scores", dataset, model)[-DIFF_RUNS:]
    sides: list[tuple[str, str, pl.DataFrame, dict[str, str] | None]] = []
    gens = store.history("generations", dataset, model)
    for entry in entries:
        g = _generations_for(gens, entry)
        outputs = None
        if g is not None:
            frame = store.read_entry(g)
            outputs = dict(frame.select("sample_id", "completion").iter_rows())
        sides.append(
            (
                f"run:{entry.run_id}",
                entry.written_at.isoformat(timespec="seconds"),
                store.read_entry(entry),
                outputs,
            )
        )
    if not sides and latest_scores is not None:
        # A store written before run history existed: its latest is the one run known.
        outputs = dict(latest_gens.select("sample_id", "completion").iter_rows())
        sides.append(("latest", "", latest_scores, outputs))
    baselines = []
    for name, scores in setup.baselines.items():
        part = scores.filter((pl.col("dataset") == dataset) & (pl.col("model") == model))
        if part.height:
            baselines.append((f"baseline:{name}", "", part, None))
    pairs = []
    flipped: dict[str, set[str]] = {}
    if setup.compare is not None:
        candidates = list(combinations(range(len(sides)), 2))
        todo = [(sides[a], sides[b]) for a, b in candidates]
        todo += [(base, side) for base in baselines for side in sides]
        for a, b in todo:
            comparisons = setup.compare(a[2], b[2])
            for c in comparisons:
                for key in ("worse", "better"):
                    for s in c[key]:
                        flipped.setdefault(a[0], set()).add(s["sample_id"])
                        flipped.setdefault(b[0], set()).add(s["sample_id"])
            pairs.append({"a": a[0], "b": b[0], "comparisons": comparisons})
    outputs = {
        name: {sid: out.get(sid) for sid in sorted(flipped.get(name, ()))}
        for name, _, _, out in sides + baselines
        if out is not None
    }
    return {
        "runs": [{"name": n, "time": t} for n, t, _, _ in sides + baselines],
        "pairs": pairs,
        "outputs": outputs,
    }


def _copy_assets(folder: Path) -> None:
    package = resources.files("eval_pipeline.report") / "explorer"
    for name in ASSETS:
        with resources.as_file(package / name) as source:
            _write(folder / name, Path(source).read_text(encoding="utf-8"))


INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eval_pipeline results explorer</title>
<link rel="stylesheet" href="explorer.css">
</head><body>
<header class="top"><a class="brand" href="#/">eval_pipeline <span>results explorer</span></a>
<nav id="nav"></nav><span id="stamp"></span></header>
<main id="app"><p class="loading">Loading&hellip;</p></main>
<noscript>The explorer needs JavaScript.</noscript>
<script>window.__explorer_index = function (data) { window.__EXPLORER_INDEX = data; };</script>
<script src="data/index.js"></script>
<script src="explorer.js"></script>
</body></html>
"""


class ExplorerFolderError(EvalPipelineError):
    """The output folder holds something other than an explorer; it is left alone."""


def write_explorer_files(store: Store, folder: Path, setup: ExplorerInput) -> Path:
    """Write the explorer for every partition of ``store`` into ``folder``.

    The whole explorer is written into a hidden folder beside ``folder`` and swapped in
    at the end, so a reader sees the old explorer or the new one, never a mix, and
    partitions that are gone leave no file behind. An existing ``folder`` is replaced
    only if it is empty or an earlier explorer.

    Raises:
        ExplorerFolderError: ``folder`` holds other files.

    Returns:
        The path of ``index.html``.
    """
    folder = Path(folder).resolve()
    if folder.exists() and any(folder.iterdir()) and not (folder / "data" / "index.js").exists():
        raise ExplorerFolderError(
            f"{folder} is not empty and holds no explorer; pick an empty or new folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder)
    tag = f"{os.getpid()}.{secrets.token_hex(4)}"
    staging = folder.parent / f".{folder.name}.{tag}.tmp"
    staging.mkdir()
    try:
        _write_explorer(store, staging, setup)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = folder.parent / f".{folder.name}.{tag}.old"
    if folder.exists():
        os.rename(folder, old)
    os.rename(staging, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder / "index.html"


# A staging folder untouched this long belongs to a writer that was killed.
STALE_STAGING_S = 15 * 60


def _remove_stale_staging(folder: Path) -> None:
    now = time.time()
    for path in folder.parent.glob(f".{folder.name}.*"):
        if path.suffix in (".tmp", ".old") and now - path.stat().st_mtime > STALE_STAGING_S:
            shutil.rmtree(path, ignore_errors=True)


def _write(path: Path, text: str) -> None:
    # A plain write: the folder being written is swapped in whole once complete.
    path.write_text(text, encoding="utf-8")


def _write_explorer(store: Store, folder: Path, setup: ExplorerInput) -> None:
    data = folder / "data"
    parts_dir = data / "p"
    parts_dir.mkdir(parents=True)
    aggregates = (
        store.scan("aggregates").collect() if setup.aggregates is None else setup.aggregates
    )
    if setup.models is not None:
        aggregates = aggregates.filter(pl.col("model").is_in(list(setup.models)))
    primary = dict(setup.primary)
    board = _primary_rows(aggregates, primary)
    history = _scan_history(store, "aggregates")
    if setup.models is not None:
        history = history.filter(pl.col("model").is_in(list(setup.models)))

    gens_all = store.scan("generations").collect()
    scores_all = store.scan("scores").collect()
    judged_all = store.scan("judgements").collect()
    samples_all = store.scan("dataset_samples").collect()
    parts = board.select("dataset", "model").unique().sort("dataset", "model")
    gens_by = gens_all.partition_by("dataset", "model", as_dict=True)
    scores_by = scores_all.partition_by("dataset", "model", as_dict=True)
    judged_by = judged_all.partition_by("dataset", "model", as_dict=True)
    samples_by = samples_all.partition_by("dataset", as_dict=True)
    aggs_by = aggregates.partition_by("dataset", "model", as_dict=True)
    runs_by = _runs_by_partition(history)

    judged_metrics = set(judged_all["metric"].unique())
    calibrations = _calibration_documents(store)
    datasets = sorted(set(parts["dataset"]))
    models = sorted(set(parts["model"]))
    suites = {name: sorted(set(ds)) for name, ds in setup.suites.items()}
    tags = _dataset_tags(samples_by)
    columns = [_column(d, primary[d], board, judged_metrics, tags, suites) for d in datasets]
    for column in columns:
        # The model-independent figures (each judge's calibration) as a dataset's facts.
        used = judged_all.filter(pl.col("dataset") == column["name"])
        column["trust"] = trust_figures(None, used if used.height else None, calibrations)
    targets: dict[str, dict[str, tuple[str | None, list[str]]]] = {}
    d_index = {d: i for i, d in enumerate(datasets)}
    m_index = {m: i for i, m in enumerate(models)}
    cells = []
    for row in board.sort("dataset", "model").iter_rows(named=True):
        d, m = row["dataset"], row["model"]
        pid = partition_id(d, m)
        runs = runs_by.get((d, m), [])
        metric = primary[d]
        cells.append(_cell(row, d_index[d], m_index[m], runs, metric))
        gens = gens_by.get((d, m))
        if gens is None:
            continue
        scores = scores_by.get((d, m))
        score_rows = scores.to_dicts() if scores is not None else []
        scales = _metric_scales(score_rows, judged_metrics)
        if d not in targets:
            targets[d] = _sample_targets(samples_by.get((d,)))
        payload = {
            "dataset": d,
            "model": m,
            "metric": metric,
            "metrics": sorted(scales),
            "scales": scales,
            "aggregates": _aggregate_rows(aggs_by[(d, m)]) if (d, m) in aggs_by else [],
            "samples": _samples(gens, score_rows, judged_by.get((d, m)), targets[d]),
            "runs": runs,
            "diff": _diff(store, d, m, scores, gens, setup),
            "trust": trust_figures(aggs_by.get((d, m)), judged_by.get((d, m)), calibrations),
        }
        _write(parts_dir / f"{pid}.js", _js_call("window.__explorer_partition", pid, payload))
    index = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": str(store.root),
        "datasets": columns,
        "models": models,
        "suites": sorted(suites),
        "baselines": sorted(setup.baselines),
        "cells": cells,
        "separator": PARTITION_SEP,
    }
    _write(data / "index.js", _js_call("window.__explorer_index", index))
    _copy_assets(folder)
    _write(folder / "index.html", INDEX_HTML)


def _calibration_documents(store: Store) -> list[dict[str, Any]]:
    """Every stored judge calibration document (``eval_pipeline.judge`` writes them)."""
    documents = []
    for judge, rubric in store.calibration_pairs():
        try:
            documents.append(json.loads(store.calibration_path(judge, rubric).read_text()))
        except (OSError, ValueError):
            continue  # a document being rewritten: the explorer shows the others
    return documents


def _figure(
    figure: str,
    metric: str,
    judge: str | None,
    value: Any,
    ci_low: Any,
    ci_high: Any,
    n: Any,
) -> dict[str, Any]:
    return {
        "figure": figure,
        "metric": metric,
        "judge": judge,
        "value": _num(value),
        "ci_low": _num(ci_low),
        "ci_high": _num(ci_high),
        "n": None if n is None else int(n),
    }


def trust_figures(
    aggregates: pl.DataFrame | None,
    judgements: pl.DataFrame | None,
    calibrations: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """How far to trust a partition's judges: one dict per figure with its 95% interval.

    From the aggregates (one partition's rows): ``position_bias``,
    ``pairwise_human_agreement``, ``pairwise_human_kappa`` and ``inter_judge_alpha``
    (``_kappa``, ``_spearman``) of each judged metric. From the calibration documents of
    the judges and rubric versions the partition's ``judgements`` used: each judge's
    ``self_consistency`` and ``judge_human_kappa`` / ``judge_human_spearman`` (pointwise
    labels). Keys: ``figure``, ``metric``, ``judge`` (None for a partition-wide figure),
    ``value``, ``ci_low``, ``ci_high``, ``n``.
    """
    out: list[dict[str, Any]] = []
    if aggregates is not None:
        for row in aggregates.sort("metric").iter_rows(named=True):
            base, _, suffix = str(row["metric"]).rpartition(":")
            if base and suffix in TRUST_ROWS and row["mean"] is not None:
                out.append(
                    _figure(
                        TRUST_ROWS[suffix],
                        base,
                        None,
                        row["mean"],
                        row["ci_low"],
                        row["ci_high"],
                        row["n"],
                    )
                )
    if judgements is None:
        return out
    used = (
        judgements.filter(pl.col("prompt_kind") == "rubric")
        .select("metric", "judge", "rubric_version")
        .unique()
        .sort("metric", "judge")
    )
    for metric, judge, version in used.iter_rows():
        for document in calibrations:
            if document.get("judge") != judge or document.get("rubric_version") != version:
                continue
            consistency = document.get("self_consistency") or {}
            if consistency.get("value") is not None:
                out.append(
                    _figure(
                        "self_consistency",
                        metric,
                        judge,
                        consistency["value"],
                        consistency.get("ci_low"),
                        consistency.get("ci_high"),
                        consistency.get("items"),
                    )
                )
            for name, figure in sorted((document.get("judge_human_agreement") or {}).items()):
                if figure.get("value") is not None:
                    out.append(
                        _figure(
                            f"judge_human_{name}",
                            metric,
                            judge,
                            figure["value"],
                            figure.get("ci_low"),
                            figure.get("ci_high"),
                            document.get("parsed"),
                        )
                    )
    return out


def _primary_rows(aggregates: pl.DataFrame, primary: dict[str, str]) -> pl.DataFrame:
    """The aggregate rows of each dataset's primary metric: the heatmap's cells."""
    return aggregates.join(
        pl.DataFrame(
            {"dataset": list(primary), "metric": list(primary.values())},
            schema={"dataset": pl.String, "metric": pl.String},
        ),
        on=["dataset", "metric"],
        how="inner",
    )


def _dataset_tags(samples_by: dict[tuple[object, ...], pl.DataFrame]) -> dict[str, list[str]]:
    """Each dataset's sample tags, sorted."""
    tags: dict[str, list[str]] = {}
    for (dataset, *_), frame in samples_by.items():
        tags[str(dataset)] = sorted({t for ts in frame["tags"].to_list() for t in (ts or [])})
    return tags


def _column(
    dataset: str,
    metric: str,
    board: pl.DataFrame,
    judged_metrics: set[str],
    tags: dict[str, list[str]],
    suites: dict[str, list[str]],
) -> dict[str, object]:
    """The heatmap column of one dataset: its metric, scale, tags and suites."""
    low, high, kind = metric_scale(
        metric,
        board.filter(pl.col("dataset") == dataset)["mean"].to_list(),
        rating=_base_metric(metric) in judged_metrics,
    )
    return {
        "name": dataset,
        "metric": metric,
        "scale": [low, high],
        "kind": kind,
        "tags": tags.get(dataset, [])[:50],
        "suites": sorted(s for s, ds in suites.items() if dataset in ds),
    }


def _cell(
    row: dict[str, Any], d_index: int, m_index: int, runs: list[dict[str, Any]], metric: str
) -> list[object]:
    """One heatmap cell: the primary metric's aggregate row and its sparkline of runs."""
    spark = [r["metrics"].get(metric, [None])[0] for r in runs][-SPARK_POINTS:]
    return [
        d_index,
        m_index,
        _num(row["mean"]),
        _num(row["ci_low"]),
        _num(row["ci_high"]),
        row["n"],
        _num(row["cost_usd"]),
        row["error_count"],
        max(1, len(runs)),
        spark,
        # How the number was obtained: loglikelihood, generate, not_applicable.
        row["answer_mode"],
    ]


def _metric_scales(
    score_rows: list[dict[str, Any]], judged_metrics: set[str]
) -> dict[str, list[object]]:
    """Each scored metric's display scale (low, high, kind), from its values."""
    values: dict[str, list[float | None]] = {}
    for r in score_rows:
        values.setdefault(r["metric"], []).append(r["value"])
    return {
        name: list(metric_scale(name, vals, rating=_base_metric(name) in judged_metrics))
        for name, vals in values.items()
    }


def _sample_targets(
    sample_frame: pl.DataFrame | None,
) -> dict[str, tuple[str | None, list[str]]]:
    """Each sample's target and tags, by sample id."""
    if sample_frame is None:
        return {}
    return {
        sid: (target, list(tags or []))
        for sid, target, tags in sample_frame.select("sample_id", "target", "tags").iter_rows()
    }


def metric_history(store: Store, model: str, dataset: str, metric: str) -> pl.DataFrame:
    """One metric of one partition over its kept runs, oldest first.

    Columns: run_id, written_at, n, mean, ci_low, ci_high, cost_usd, output_tokens. A
    store written before run history existed gives its latest aggregates as one row
    with run_id ``latest``.
    """
    rows = []
    entries = store.history("aggregates", dataset, model)
    sources: list[tuple[str, Any, pl.DataFrame]] = [
        (e.run_id, e.written_at, store.read_entry(e)) for e in entries
    ]
    if not sources:
        latest = store.read_optional("aggregates", dataset=dataset, model=model)
        if latest is not None:
            path = store.path("aggregates", dataset, model)
            when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            sources.append(("latest", when, latest))
    for run_id, when, frame in sources:
        for r in frame.filter(pl.col("metric") == metric).iter_rows(named=True):
            rows.append(
                {
                    "run_id": run_id,
                    "written_at": when,
                    "n": r["n"],
                    "mean": r["mean"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "cost_usd": r["cost_usd"],
                    "output_tokens": r["output_tokens"],
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "run_id": pl.String,
            "written_at": pl.Datetime("us", "UTC"),
            "n": pl.Int64,
            "mean": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "cost_usd": pl.Float64,
            "output_tokens": pl.Int64,
        },
    )
