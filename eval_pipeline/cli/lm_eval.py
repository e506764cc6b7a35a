"""``lm-eval tasks``, ``lm-eval add`` and ``lm-eval index``: lm-evaluation-harness tasks."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import yaml

from eval_pipeline.catalog import dataset_spec_for, list_tasks, load_catalog, task_index
from eval_pipeline.cli._common import EXIT_NO_DATA, EXIT_OK, EXIT_USAGE, roots


def lm_eval(args: argparse.Namespace) -> int:
    """``lm-eval tasks``, ``add`` or ``index``."""
    root, _ = roots(args)
    if args.lm_eval_command == "index":
        print(f"eval-pipeline: {len(task_index())} lm-eval tasks, groups and tags indexed")
        return EXIT_OK
    if args.lm_eval_command == "tasks":
        listing = list_tasks(args.patterns, check_local=args.local)
        if not listing:
            print(f"eval-pipeline: no lm-eval name matches {args.patterns}", file=sys.stderr)
            return EXIT_NO_DATA
        if args.json:
            print(json.dumps([vars(t) for t in listing], indent=2))
            return EXIT_OK
        for t in listing:
            status = ("ok" if t.problem is None else f"no: {t.problem}") if t.checked else ""
            print(f"{t.name}\t{t.kind}\t{status}".rstrip())
        return EXIT_OK
    name = args.name or re.sub(r"[^a-z0-9._-]+", "-", args.task.lower()).strip("-")
    folder = Path(root) / "datasets" / name
    if folder.exists():
        print(f"eval-pipeline: error: {folder} already exists", file=sys.stderr)
        return EXIT_USAGE
    spec = dataset_spec_for(
        args.task,
        name,
        num_fewshot=args.num_fewshot,
        primary_metric=args.primary_metric,
        suite=args.suite,
    )
    folder.mkdir(parents=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        rows = len(load_catalog(root, load_rows=False).dataset(name).rows)
    except Exception:
        shutil.rmtree(folder)  # nothing half-written stays behind
        raise
    print(f"eval-pipeline: wrote {folder / 'dataset.yaml'} ({rows} documents)")
    return EXIT_OK
