"""``doctor``: the preflight of the whole catalog, one line per problem with its fix."""

from __future__ import annotations

import argparse
import json

from eval_pipeline.cli._common import EXIT_FAILED, EXIT_OK, catalog_with_adapters, roots
from eval_pipeline.operations import catalog_preflight


def doctor(args: argparse.Namespace) -> int:
    """Print the preflight of the whole catalog; exit 1 on a problem."""
    root, store_root = roots(args)
    catalog = catalog_with_adapters(root, store_root)
    report = catalog_preflight(catalog)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return EXIT_OK if report.ok else EXIT_FAILED
    models, datasets = len(catalog.model_slugs), len(catalog.dataset_names)
    judges = f" and {len(report.judges)} judge(s)" if report.judges else ""
    print(
        f"preflight of {len(report.partitions)} partitions ({models} model(s) x "
        f"{datasets} dataset(s)){judges}: {len(report.problems)} problem(s), "
        f"{len(report.notes)} note(s)"
    )
    if report.problems:
        print("problems:")
        print("\n".join(f"  {line}" for line in report.lines()))
    if report.notes:
        print("notes (not problems):")
        print("\n".join(f"  {note.line()}" for note in report.notes))
    return EXIT_OK if report.ok else EXIT_FAILED
