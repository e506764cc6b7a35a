"""The project's own command line: ``eval-pipeline <command>``.

``run`` materializes the evaluation job for every selected partition in this process
(so a local model loads once), records the runs in the Dagster instance under
``$DAGSTER_HOME`` and prints the leaderboard. ``leaderboard`` prints the stored one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DEFAULT_LIMIT = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval-pipeline", description="Evaluate LLMs as Dagster assets; results as Parquet."
    )
    parser.add_argument("--root", help="project root with models.yaml, datasets/, prompts/")
    parser.add_argument("--store", help="Parquet store root (default: $EVAL_PIPELINE_STORE or <root>/.eval_store)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="materialize the evaluation job for model x dataset partitions, print the leaderboard",
    )
    run.add_argument("--model", action="append", help="model slug (repeatable; default: all)")
    run.add_argument("--dataset", action="append", help="dataset name (repeatable; default: all)")
    limit = run.add_mutually_exclusive_group()
    limit.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"samples per dataset (default {DEFAULT_LIMIT})")
    limit.add_argument("--full", action="store_true", help="evaluate every sample")
    run.add_argument("--no-cache", action="store_true", help="ignore cached responses")
    run.add_argument("--json", action="store_true", help="print the leaderboard as JSON")

    board = sub.add_parser("leaderboard", help="print the stored leaderboard")
    board.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from eval_pipeline.core.errors import EvalPipelineError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "leaderboard":
            return _leaderboard(args)
    except (EvalPipelineError, KeyError) as exc:
        print(f"eval-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


def _roots(args) -> tuple[str, str]:
    from eval_pipeline.resources import default_project_root, default_store_root

    root = str(Path(args.root).resolve()) if args.root else default_project_root()
    return root, args.store or default_store_root(root)


def _run(args) -> int:
    import dagster as dg

    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.core.keys import PartitionKey
    from eval_pipeline.defs import build_definitions
    from eval_pipeline.stages import leaderboard_markdown
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    catalog = load_catalog(root, load_rows=False)
    models = args.model or catalog.model_slugs
    datasets = args.dataset or catalog.dataset_names
    for m in models:
        catalog.model(m)
    for d in datasets:
        if d not in catalog.dataset_specs:
            raise KeyError(f"unknown dataset {d!r}; known: {', '.join(catalog.dataset_names)}")
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(root) / ".dagster_home"
        home.mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    defs = build_definitions(root, store_root)
    job = defs.resolve_job_def("evaluation_job")
    limit = None if args.full else args.limit
    run_config = {"ops": {"generations": {"config": {"sample_limit": limit, "use_cache": not args.no_cache}}}}
    failed = []
    with dg.DagsterInstance.get() as instance:
        for m in models:
            for d in datasets:
                key = PartitionKey(model=m, dataset=d)
                start = time.perf_counter()
                print(f"== {key.key}: evaluating ({'all' if limit is None else limit} samples)", file=sys.stderr, flush=True)
                result = job.execute_in_process(
                    partition_key=key.key, instance=instance, run_config=run_config, raise_on_error=False
                )
                calls = _metadata_value(result, "generations", "model_calls")
                status = "ok" if result.success else "FAILED"
                print(
                    f"== {key.key}: {status} in {time.perf_counter() - start:.1f}s, "
                    f"model calls: {calls}, run id {result.run_id}",
                    file=sys.stderr,
                    flush=True,
                )
                if not result.success:
                    failed.append(key.key)
    board = Store(store_root).read("leaderboard")
    board = board.filter(board["model"].is_in(models) & board["dataset"].is_in(datasets))
    print(json.dumps(board.to_dicts(), indent=2) if args.json else leaderboard_markdown(board))
    if failed:
        print(f"eval-pipeline: failed partitions: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _metadata_value(result, asset: str, name: str):
    for mat in result.asset_materializations_for_node(asset):
        if name in mat.metadata:
            return mat.metadata[name].value
    return None


def _leaderboard(args) -> int:
    from eval_pipeline.stages import leaderboard_markdown
    from eval_pipeline.storage import Store

    _, store_root = _roots(args)
    board = Store(store_root).read_optional("leaderboard")
    if board is None:
        print("eval-pipeline: error: no leaderboard yet; run `eval-pipeline run` first", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(board.to_dicts(), indent=2) if args.json else leaderboard_markdown(board))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
