"""``run``: the preflight, then the evaluation job per partition and the reporting job once."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from eval_pipeline.catalog import Catalog
from eval_pipeline.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    catalog_with_adapters,
    roots,
    selected_partitions,
    use_dagster_home,
)
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.operations import host_tags, preflight
from eval_pipeline.stages import leaderboard_markdown
from eval_pipeline.storage import Store

if TYPE_CHECKING:  # Dagster is imported on use (startup cost)
    from dagster import DagsterInstance, Definitions, ExecuteInProcessResult, JobDefinition


def run(args: argparse.Namespace) -> int:
    """Preflight, evaluate every selected partition, report, print the leaderboard."""
    root, store_root = roots(args)
    # A fine-tuned model <base>__<recipe> is a model once its adapter is trained.
    catalog = catalog_with_adapters(root, store_root)
    models, datasets = selected_partitions(args, catalog)
    if not args.no_preflight:
        # Before Dagster is imported: a machine that lacks something hears it in seconds.
        keys = [PartitionKey(model=m, dataset=d) for m in models for d in datasets]
        report = preflight(catalog, keys)
        if not report.ok:
            print(f"eval-pipeline: {report.refusal('nothing was run')}", file=sys.stderr)
            return EXIT_USAGE

    # Dagster and the definitions load only now (seconds): a refusing preflight is fast.
    import dagster as dg

    from eval_pipeline.defs import build_definitions, mark_dead_runs

    use_dagster_home(root, create=True)
    defs = build_definitions(root, store_root)
    job = defs.resolve_job_def("evaluation_job")
    limit = None if args.full else args.limit
    loggers = _console_loggers(args.log_level)
    run_config = {
        "ops": {
            "generations": {
                "config": {
                    "sample_limit": limit,
                    "use_cache": not args.no_cache,
                    "preflight": not args.no_preflight,
                }
            }
        },
        **loggers,
    }
    failed = []
    tags = {**host_tags(), **_run_tags(args)}
    # Standard output carries the leaderboard alone (``--json`` is parsed by scripts); the
    # node's progress lines, written to stdout for SLURM job logs, go to stderr here.
    with dg.DagsterInstance.get() as instance, contextlib.redirect_stdout(sys.stderr):
        # A previous run killed mid-way is still STARTED: say it failed before starting anew.
        for dead in mark_dead_runs(instance):
            print(f"eval-pipeline: {dead.describe()}", file=sys.stderr, flush=True)
        for m in models:
            for d in datasets:
                key = PartitionKey(model=m, dataset=d)
                if not _evaluate_partition(job, instance, catalog, key, limit, run_config, tags):
                    failed.append(key.key)
        if len(failed) < len(models) * len(datasets):
            # The leaderboard and reports read every stored partition: built once, last.
            failed += _run_reporting(defs, instance, loggers)
    return _print_leaderboard(Store(store_root), models, datasets, failed, as_json=args.json)


def _console_loggers(log_level: str) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """The run config's loggers: step events at ``log_level``.

    At INFO: progress lines and results, not Dagster's DEBUG chatter.
    """
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _run_tags(args: argparse.Namespace) -> dict[str, str]:
    """The tags every run of this invocation carries: its budget, route and fallback."""
    from eval_pipeline.defs.jobs import BATCH_FALLBACK_TAG, BUDGET_SCOPE_TAG, BUDGET_TAG, ROUTE_TAG

    tags: dict[str, str] = {}
    if args.budget is not None:
        # One scope for every run of this invocation: they share one budget.
        scope = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        tags = {BUDGET_TAG: str(args.budget), BUDGET_SCOPE_TAG: scope}
    if getattr(args, "batch", False):
        tags[ROUTE_TAG] = "batch"
    if getattr(args, "batch_online_fallback", False):
        tags[BATCH_FALLBACK_TAG] = "online"
    return tags


def _evaluate_partition(
    job: JobDefinition,
    instance: DagsterInstance,
    catalog: Catalog,
    key: PartitionKey,
    limit: int | None,
    run_config: Mapping[str, object],
    tags: dict[str, str],
) -> bool:
    """Run the evaluation job for one partition, with a line before and after; its success."""
    start = time.perf_counter()
    # A not-applicable cell still runs (no model call): its n/a row is stored.
    reason = catalog.not_applicable_reason(key.model, key.dataset)
    print(
        f"== {key.key}: "
        + (
            f"not applicable: {reason}"
            if reason
            else f"evaluating ({_sample_count(catalog, key.dataset, limit)})"
        ),
        file=sys.stderr,
        flush=True,
    )
    result = job.execute_in_process(
        partition_key=key.key,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
        tags=tags,
    )
    calls = _metadata_value(result, "generations", "model_calls")
    status = "ok" if result.success else "FAILED"
    print(
        f"== {key.key}: {status} in {time.perf_counter() - start:.1f}s, "
        f"model calls: {calls}, run id {result.run_id}",
        file=sys.stderr,
        flush=True,
    )
    return result.success


def _run_reporting(
    defs: Definitions, instance: DagsterInstance, loggers: Mapping[str, object]
) -> list[str]:
    """Run the reporting job once; ``[REPORTING_JOB]`` if it failed, else nothing."""
    from eval_pipeline.defs.jobs import REPORTING_JOB

    start = time.perf_counter()
    reporting = defs.resolve_job_def(REPORTING_JOB).execute_in_process(
        instance=instance,
        run_config=loggers,
        raise_on_error=False,
        tags=host_tags(),
    )
    print(
        f"== reporting: {'ok' if reporting.success else 'FAILED'} in "
        f"{time.perf_counter() - start:.1f}s, run id {reporting.run_id}",
        file=sys.stderr,
        flush=True,
    )
    return [] if reporting.success else [REPORTING_JOB]


def _print_leaderboard(
    store: Store, models: list[str], datasets: list[str], failed: list[str], *, as_json: bool
) -> int:
    """Print the selected partitions' leaderboard; the exit code of the whole run."""
    board = store.read_optional("leaderboard")
    if board is None:
        # Every partition failed, and no earlier run wrote a leaderboard.
        print(
            f"eval-pipeline: failed partitions: {', '.join(failed) or 'none'}; there is no "
            "leaderboard yet (no partition has completed). The step failures are in the "
            "log above and in the Dagster UI.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    board = board.filter(board["model"].is_in(models) & board["dataset"].is_in(datasets))
    print(json.dumps(board.to_dicts(), indent=2) if as_json else leaderboard_markdown(board))
    if failed:
        print(f"eval-pipeline: failed partitions: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _metadata_value(result: ExecuteInProcessResult, asset: str, name: str) -> object:
    for mat in result.asset_materializations_for_node(asset):
        if name in mat.metadata:
            return mat.metadata[name].value
    return None


def _sample_count(catalog: Catalog, dataset: str, limit: int | None) -> str:
    # An lm-eval group's limit applies to each of its tasks, as lm-eval's --limit.
    if limit is None:
        return "all samples"
    if catalog.limits_per_task(dataset):
        return f"{limit} samples per task of the group"
    return f"{limit} samples"
