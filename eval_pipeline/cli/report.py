"""``report``: writes the static HTML results explorer."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from eval_pipeline.cli._common import EXIT_NO_DATA, EXIT_OK, catalog_with_adapters, roots
from eval_pipeline.stages import write_explorer
from eval_pipeline.storage import Store


def report(args: argparse.Namespace) -> int:
    """Write the HTML results explorer and print its path."""
    root, store_root = roots(args)
    store = Store(store_root)
    if not store.table_dir("aggregates").exists():
        print(
            f"eval-pipeline: nothing evaluated in {store_root} yet; run `eval-pipeline run` first",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    catalog = catalog_with_adapters(root, store_root)
    index = write_explorer(catalog, store, Path(args.output) if args.output else None)
    print(index)
    if args.open_browser:
        webbrowser.open(index.resolve().as_uri())
    return EXIT_OK
