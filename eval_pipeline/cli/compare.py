"""``compare`` (paired regression tests between two runs) and ``baseline pin``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from eval_pipeline.cli._common import EXIT_FAILED, EXIT_NO_DATA, EXIT_OK, EXIT_USAGE, roots
from eval_pipeline.regression import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    BaselineError,
    baseline_dir,
    compare_runs,
    load_baseline,
    pin_baseline,
    report_json_text,
    resolve_run,
)
from eval_pipeline.storage import Store


def compare(args: argparse.Namespace) -> int:
    """Compare run B against run A; exit 1 on a regression."""
    root, store_root = roots(args)
    store = Store(store_root)
    try:
        a, b = resolve_run(args.a, root, store), resolve_run(args.b, root, store)
    except BaselineError as exc:
        print(f"eval-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = _baseline_settings(args.a, root)
    frames = []
    for run in (a, b):
        scores = run.scores
        if args.model:
            scores = scores.filter(pl.col("model").is_in(args.model))
        if args.dataset:
            scores = scores.filter(pl.col("dataset").is_in(args.dataset))
        frames.append(scores)
    report = compare_runs(
        frames[0],
        frames[1],
        alpha=args.alpha if args.alpha is not None else settings.get("alpha", DEFAULT_ALPHA),
        threshold=args.threshold
        if args.threshold is not None
        else settings.get("threshold", DEFAULT_THRESHOLD),
        thresholds=settings.get("thresholds") if args.threshold is None else None,
        mid_p=not args.exact,
        baseline_name=a.name,
        current_name=b.name,
    )
    for refusal in report.refused:
        print(f"eval-pipeline: not compared: {refusal}", file=sys.stderr)
    if not report.comparisons:
        print(
            "eval-pipeline: the two runs share no model x dataset x metric answered the same "
            "way; nothing compared",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if args.output:
        Path(f"{args.output}.md").write_text(report.to_markdown())
        Path(f"{args.output}.json").write_text(report_json_text(report) + "\n")
    print(report_json_text(report) if args.json else report.to_markdown())
    return EXIT_FAILED if report.regressed else EXIT_OK


def _baseline_settings(reference: str, root: str) -> dict:
    # A pinned baseline carries the alpha and thresholds to judge new runs by.

    name = reference.removeprefix("baseline:")
    if not (reference.startswith("baseline:") or baseline_dir(root, name).exists()):
        return {}
    try:
        base = load_baseline(root, name)
    except BaselineError:
        return {}
    return {"alpha": base.alpha, "threshold": base.threshold, "thresholds": base.thresholds}


def baseline(args: argparse.Namespace) -> int:
    """Pin the stored scores as a named baseline (``baseline pin``)."""
    root, store_root = roots(args)
    folder = pin_baseline(
        Store(store_root),
        root,
        args.name,
        models=args.model,
        datasets=args.dataset,
        description=args.description,
    )
    print(f"pinned baseline {args.name!r} at {folder}")
    return EXIT_OK
