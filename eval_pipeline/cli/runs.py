"""``runs mark-dead``: marks runs whose process was killed as failed."""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from eval_pipeline.cli._common import EXIT_NO_DATA, EXIT_OK, roots, use_dagster_home
from eval_pipeline.defs import mark_dead_runs


def runs(args: argparse.Namespace) -> int:
    """Mark STARTED runs whose process is gone as failed (``runs mark-dead``)."""
    if not use_dagster_home(roots(args)[0], create=False):
        print("eval-pipeline: no DAGSTER_HOME and no run history to check", file=sys.stderr)
        return EXIT_NO_DATA
    with dg.DagsterInstance.get() as instance:
        dead = mark_dead_runs(instance, dry_run=args.dry_run, assume_local=args.assume_local)
    for run in dead:
        print(run.describe())
    if not dead:
        print("no STARTED run with a dead process")
    return EXIT_OK
