"""``train --recipe R``: trains a recipe's LoRA adapter (or finds it stored)."""

from __future__ import annotations

import argparse
import sys

from eval_pipeline.catalog import load_catalog
from eval_pipeline.cli._common import EXIT_OK, EXIT_USAGE, roots
from eval_pipeline.storage import Store
from eval_pipeline.training import adapter_slug, load_recipes, train_recipe


def train(args: argparse.Namespace) -> int:
    """Train a recipe's adapter (or find it stored) and print its record."""
    root, store_root = roots(args)
    catalog = load_catalog(root, load_rows=False)
    recipes = load_recipes(root, catalog)
    if args.recipe not in recipes:
        known = ", ".join(sorted(recipes)) or "none"
        print(
            f"eval-pipeline: error: unknown recipe {args.recipe!r} (known: {known})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    recipe = recipes[args.recipe]

    def step(done: int, steps: int, loss: float) -> None:
        print(f"step {done}/{steps} loss {loss:.4f}", file=sys.stderr, flush=True)

    adapter = train_recipe(catalog, Store(store_root), recipe, force=args.force, on_step=step)
    if args.json:
        print(adapter.to_json())
        return EXIT_OK
    report = adapter.report
    print(f"adapter: {adapter.path}")
    print(f"content hash: {adapter.content_hash}")
    print(f"model: {adapter_slug(recipe.base, recipe.name)}")
    print(f"trained now: {'no (stored, recipe unchanged)' if adapter.reused else 'yes'}")
    print(
        f"report: {report.steps} steps on {report.examples} examples, loss "
        f"{report.first_loss} -> {report.final_loss}, {report.wall_s:.1f} s, "
        f"{report.tokens_per_s:.1f} tokens/s, peak {report.peak_memory_gb:.2f} GB, "
        f"{report.device} ({report.quantization}, {report.optimizer})"
    )
    return EXIT_OK
