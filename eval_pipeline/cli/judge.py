"""``label`` (rate judge-calibration responses by hand, or import a file of ratings) and ``calibrations``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType
from typing import NoReturn

from eval_pipeline.cli._common import EXIT_NO_DATA, EXIT_OK, EXIT_USAGE, roots
from eval_pipeline.judge import (
    calibration_markdown,
    import_labels,
    label_session,
    stored_calibrations,
)
from eval_pipeline.storage import Store


def calibrations(args: argparse.Namespace) -> int:
    """Print the stored judge calibrations."""
    _, store_root = roots(args)
    reports = stored_calibrations(Store(store_root))
    if not reports:
        print(
            f"eval-pipeline: no judge calibrations under {store_root} "
            "(materialize a judged dataset or its judge_calibration asset first)",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if args.json:
        rows = []
        for r in reports:
            rows.append(
                {
                    "judge": r.judge,
                    "rubric": r.rubric,
                    "rubric_version": r.rubric_version,
                    "status": r.status,
                    "message": r.message,
                    "labels": r.labels,
                    "labels_source": r.labels_source,
                    "readable_verdicts": r.parsed,
                    "result": r.result.to_json() if r.result else None,
                    "judge_human_agreement": r.agreement,
                    "self_consistency": r.self_consistency or None,
                }
            )
        print(json.dumps(rows, indent=2))
    else:
        print(calibration_markdown(reports))
    return EXIT_OK


def label(args: argparse.Namespace) -> int:
    """Ask for human ratings of one rubric's calibration responses, or import a file of them."""
    root, _ = roots(args)
    if args.action == "import":
        if not args.file:
            print("eval-pipeline label import: name the file to import", file=sys.stderr)
            return EXIT_USAGE
        report = import_labels(root, args.file)
        print(
            f"{report.rows} {report.kind} labels read from {args.file}, {report.added} new, "
            f"saved in {report.path}"
        )
        return EXIT_OK
    if not args.rubric or not args.rater:
        print("eval-pipeline label: --rubric and --rater are required to rate", file=sys.stderr)
        return EXIT_USAGE

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM end the session as "q" does (each rating is saved when given).
    # Handlers of its own, as in metrics.py: with polars' SIGINT handler (SA_RESTART) a read
    # of standard input resumes after Ctrl-C, and the prompt waits for Enter.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}

    def ask(prompt: str) -> str | None:
        try:
            return input(prompt)
        except (EOFError, KeyboardInterrupt):
            return None

    try:
        session = label_session(root, args.rubric, args.rater, ask=ask, say=print, limit=args.limit)
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    print(
        f"\n{session.labelled} rated, {session.skipped} skipped, {session.remaining} left "
        f"for {session.rater} on {session.rubric}; saved in {session.path}"
    )
    return EXIT_OK
