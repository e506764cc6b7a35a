"""What the command modules share: exit codes, the project and store roots, output.

The parser imports this module (for the exit codes' help), so it imports nothing beyond
the standard library at the top: ``eval-pipeline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names for annotations only: importing them costs startup time
    import polars as pl

    from eval_pipeline.catalog import Catalog

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Nothing stored matches the request (not materialized yet, or filters match nothing).
EXIT_NO_DATA = 3
EXIT_CODES_HELP = (
    "exit codes: 0 ok; 1 failed run, a regression (compare) or a problem found (doctor); "
    "2 usage or input error, or run refused by its preflight (nothing ran); "
    "3 no stored data matches"
)

DEFAULT_LIMIT = 20


def roots(args: argparse.Namespace) -> tuple[str, str]:
    """The project root and the store root of ``--root`` and ``--store`` (or their defaults)."""
    # Imported on use: the catalog and the store load polars and pydantic (startup cost).
    from eval_pipeline.catalog import default_project_root
    from eval_pipeline.storage import default_store_root

    root = str(Path(args.root).resolve()) if args.root else default_project_root()
    return root, args.store or default_store_root(root)


def catalog_with_adapters(root: str, store_root: str) -> Catalog:
    """The catalog, with the recipes' adapters trained in the store as models.

    What the ``catalog`` resource loads, read without Dagster (so a refusing preflight
    answers before Dagster is imported).
    """
    from eval_pipeline.catalog import load_catalog  # on use: polars, pydantic (startup cost)
    from eval_pipeline.storage import Store
    from eval_pipeline.training import load_recipes, with_adapter_models

    catalog = load_catalog(root, load_rows=False)
    return with_adapter_models(catalog, Store(store_root), load_recipes(root, catalog))


def selected_partitions(args: argparse.Namespace, catalog: Catalog) -> tuple[list[str], list[str]]:
    """The models and datasets of ``--model``, ``--dataset`` and ``--suite``, each checked.

    No model: every model of the catalog; no dataset nor suite: every dataset of the
    default run. An unknown model or dataset raises ``KeyError``.
    """
    models: list[str] = args.model or catalog.model_slugs
    datasets = list(args.dataset or [])
    for suite in getattr(args, "suite", None) or []:
        datasets += [d for d in catalog.suite(suite) if d not in datasets]
    datasets = datasets or [
        name
        for name, spec in catalog.dataset_specs.items()
        if not spec.suite or spec.in_default_run
    ]
    for m in models:
        catalog.model(m)
    for d in datasets:
        if d not in catalog.dataset_specs:
            raise KeyError(f"unknown dataset {d!r}; known: {', '.join(catalog.dataset_names)}")
    return models, datasets


def emit(frame: pl.DataFrame, as_json: bool) -> None:
    """Print a table as JSON or as Markdown."""
    from eval_pipeline.report import frame_json, frame_markdown  # on use: polars (startup cost)

    print(frame_json(frame) if as_json else frame_markdown(frame))


def use_dagster_home(root: str, *, create: bool) -> bool:
    """Point DAGSTER_HOME at ``<root>/.dagster_home`` unless it is set; False if there is none."""
    if os.environ.get("DAGSTER_HOME"):
        return True
    home = Path(root) / ".dagster_home"
    if create:
        home.mkdir(exist_ok=True)
    elif not home.exists():
        return False
    os.environ["DAGSTER_HOME"] = str(home)
    return True
