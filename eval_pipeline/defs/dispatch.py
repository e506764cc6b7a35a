"""Running a step's tasks through the runners, and reporting each partition from the outcomes.

A single-run backfill hands a grid asset the rectangle of partitions it covers. Work that
calls models (``generations``, and the judging inside ``scores``) becomes one
:class:`~eval_pipeline.model_task.ModelTask` per model, run where the catalog says
(``runs_on``): inline in the step or as a SLURM job, both through the same model-task function.
:func:`run_tasks` submits them, :func:`collect` turns the outcomes into one
materialization (with its metadata) or one failure per partition. Other grid assets loop
over their partitions with :func:`materialize_each`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import dagster as dg
from dagster._core.definitions.metadata import RawMetadataValue

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.engine import RunStats
from eval_pipeline.model_task import ModelTask, Work, WorkResult
from eval_pipeline.operations import preflight
from eval_pipeline.runners import InlineRunner, Runner, Submission, TaskOutcome

# One asset's metadata: each value as Dagster takes it (text, a number, a list or dict,
# a path, a MetadataValue).
Metadata = dict[str, RawMetadataValue]


def report_partitions(
    context: dg.AssetExecutionContext,
    metadata: Mapping[str, Metadata],
    failures: Mapping[str, str],
    failure_metadata: Metadata | None = None,
) -> None:
    """Attach each partition's metadata to its materialization, or fail the step.

    When some partitions failed, the others are still recorded as materialized (their
    files are written) before the step fails naming the failed ones.
    """
    if not failures:
        for key, values in metadata.items():
            context.add_asset_metadata(values, partition_key=key)
        return
    for key, values in metadata.items():
        context.log_event(
            dg.AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=values)
        )
    lines = [f"{key}: {problem}" for key, problem in sorted(failures.items())]
    raise dg.Failure(
        description=f"{len(failures)} of {len(failures) + len(metadata)} partitions failed:\n"
        + "\n".join(lines),
        metadata=failure_metadata or {},
    )


def materialize_each(
    context: dg.AssetExecutionContext,
    build: Callable[[PartitionKey], Metadata],
    keys: Sequence[PartitionKey] | None = None,
    failures: Mapping[str, str] | None = None,
) -> None:
    """Run ``build`` for every partition of the step and report each one.

    With one partition an error propagates as it is; with several, the others go on and
    the step fails at the end naming every partition that failed. ``keys`` narrows the
    partitions built; ``failures`` are partitions that already failed before.
    """
    keys = current_partitions(context) if keys is None else list(keys)
    metadata: dict[str, Metadata] = {}
    failed: dict[str, str] = dict(failures or {})
    for key in keys:
        try:
            metadata[key.key] = build(key)
        except Exception as exc:
            if len(keys) == 1 and not failed:
                raise
            context.log.error(f"{key.key}: {type(exc).__name__}: {exc}")
            failed[key.key] = f"{type(exc).__name__}: {exc}"
    report_partitions(context, metadata, failed)


def run_tasks(
    context: dg.AssetExecutionContext,
    catalog: Catalog,
    runners: Mapping[str, Runner],
    tasks: Sequence[ModelTask],
) -> list[TaskOutcome]:
    """Run every task on the runner its model's ``runs_on`` names; one outcome per task.

    Scheduled runners (SLURM) get their tasks first, so the jobs queue and run while the
    inline tasks work in this process. Terminating the run (or any error while waiting)
    cancels the jobs that are still queued or running.
    """
    by_runner: dict[str, list[ModelTask]] = {}
    for task in tasks:
        by_runner.setdefault(catalog.model(task.model).runs_on, []).append(task)
    # Inline last to submit (nothing starts until waited on) and first to wait for.
    order = sorted(by_runner, key=lambda name: isinstance(runners[name], InlineRunner))
    submissions: list[Submission] = []
    try:
        for name in order:
            submission = runners[name].submit(by_runner[name], run_id=context.run.run_id)
            for model, job_id in submission.job_ids.items():
                work = ", ".join(
                    w.label for t in by_runner[name] if t.model == model for w in t.work
                )
                context.log.info(f"{model}: submitted SLURM job {job_id} for {work}")
            submissions.append(submission)
        outcomes: list[TaskOutcome] = []
        for submission in reversed(submissions):
            outcomes.extend(submission.wait(context.log))
    except BaseException:
        for submission in submissions:
            cancelled = submission.cancel()
            if cancelled:
                context.log.warning(f"cancelled SLURM jobs {', '.join(cancelled)}")
        raise
    order_of = {id(t): i for i, t in enumerate(tasks)}
    return sorted(outcomes, key=lambda o: order_of.get(id(o.task), len(tasks)))


def stats_metadata(stats: RunStats, *, requests: bool = False) -> Metadata:
    """The engine's counters as asset metadata: the one place they are named for Dagster.

    ``requests`` adds the per-request counters (retries, rate-limited responses, damaged
    cache entries sent again) that only generation reports.
    """
    metadata: Metadata = {
        "model_calls": stats.model_calls,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "cost_usd": round(stats.cost_usd, 6),
        "wall_s": round(stats.wall_s, 3),
    }
    if requests:
        metadata.update(
            retries=stats.retries,
            rate_limited_responses=stats.rate_limited,
            cache_damaged=stats.cache_damaged,
        )
    return metadata


def work_metadata(result: WorkResult, outcome: TaskOutcome) -> Metadata:
    """The metadata of one partition's work, wherever its task ran."""
    node = outcome.result
    assert node is not None
    generate = result.work.kind == "generate"
    metadata: Metadata = {
        "dagster/row_count": result.rows,
        "new_rows": result.new_rows,
        "reused_rows": result.reused_rows,
        **stats_metadata(result.stats, requests=generate),
        "runs_on": node.runs_on,
    }
    if result.path:
        metadata["path"] = dg.MetadataValue.path(result.path)
    if generate:
        metadata.update(
            prompt_version=result.prompt_version,
            dataset_version=result.dataset_version,
            answer_mode=result.answer_mode,
            errors=result.errors,
        )
        if result.stats.route == "batch":
            metadata.update(batch_metadata(result.stats))
        if result.plan_cost_usd is not None:
            planned = result.plan_cost_usd
            metadata["cost/planned_usd"] = round(planned, 6)
            # 1.0: as planned. No figure when the plan expected nothing to be spent.
            if planned > 0:
                metadata["cost/actual_over_planned"] = round(result.stats.cost_usd / planned, 4)
    # Where and how fast the task's model ran (every partition of the task shares it).
    prefix = "slurm/" if node.runs_on == "slurm" else "node/"
    metadata.update(
        {
            f"{prefix}model_loads": node.model_loads,
            f"{prefix}model_load_s": node.model_load_s,
            f"{prefix}tokens_per_s": node.tokens_per_s,
            f"{prefix}peak_rss_gb": node.peak_rss_gb,
            f"{prefix}peak_accelerator_mem_gb": node.peak_accelerator_mem_gb or 0.0,
            f"{prefix}gpu_util_mean": node.gpu_util_mean or 0.0,
            f"{prefix}gpu_type": node.gpu_type,
        }
    )
    if node.runs_on == "slurm":
        metadata.update(
            {
                "slurm/job_id": node.job_id or outcome.job_id,
                "slurm/node": node.node,
                "slurm/attempt": node.attempt,
                "slurm/requested_gres": node.requested_gres or "",
                "slurm/log": dg.MetadataValue.path(outcome.log_path),
            }
        )
    return metadata


def batch_metadata(stats: RunStats) -> Metadata:
    """A batch-route partition's provider batches, and its cost against the worst case counted."""
    worst = stats.batch_worst_usd
    return {
        "route": "batch",
        "batch/ids": ", ".join(stats.batch_ids),
        "batch/count": len(stats.batch_ids),
        "batch/rounds": stats.batch_rounds,
        "batch/retried_requests": stats.batch_retried,
        "batch/waited_s": round(stats.batch_waited_s, 3),
        "cost/worst_case_usd": round(worst, 6),
        "cost/actual_over_worst_case": round(stats.cost_usd / worst, 4) if worst else 0.0,
    }


def collect(
    context: dg.AssetExecutionContext,
    outcomes: Sequence[TaskOutcome],
    partition_of: Callable[[ModelTask, Work], str],
) -> tuple[dict[str, Metadata], dict[str, str], Metadata]:
    """One failure loop over the outcomes of every runner.

    Returns the metadata of each partition whose work succeeded, the problem of each that
    failed (every partition of a failed task fails with it, with its log tail), and the
    failure metadata (job ids and log tails of failed jobs).
    """
    metadata: dict[str, Metadata] = {}
    failures: dict[str, str] = {}
    failure_metadata: Metadata = {}
    for outcome in outcomes:
        task = outcome.task
        if not outcome.ok:
            tail = f"\n--- log tail ---\n{outcome.log_tail}" if outcome.log_tail else ""
            context.log.error(f"{task.model}: {outcome.error}{tail}")
            if outcome.job_id:
                failure_metadata[f"slurm/{task.model}/job_id"] = outcome.job_id
                failure_metadata[f"slurm/{task.model}/log_tail"] = dg.MetadataValue.md(
                    f"```\n{outcome.log_tail}\n```"
                )
                failure_metadata[f"slurm/{task.model}/log"] = dg.MetadataValue.path(
                    outcome.log_path
                )
            for work in task.work:
                failures[partition_of(task, work)] = str(outcome.error)
            continue
        node = outcome.result
        assert node is not None
        context.log.info(
            f"{task.model}: {node.runs_on} task{f' (job {node.job_id} on {node.node})' if node.job_id else ''} "
            f"done: model loaded {node.model_loads}x in {node.model_load_s:.1f}s, "
            f"{node.tokens_per_s:.1f} tokens/s"
        )
        for work in task.work:
            key = partition_of(task, work)
            result = node.result_for(work)
            if result is None or not result.ok:
                problem = result.error if result is not None else "no result"
                context.log.error(f"{key}: {problem}")
                failures[key] = str(problem)
            elif key not in failures:
                metadata[key] = work_metadata(result, outcome)
    return metadata, failures, failure_metadata


def require_models(catalog: Catalog, keys: Sequence[PartitionKey]) -> None:
    """Fail the step when a partition's model is not in the catalog as it stands.

    The grid also holds the fine-tuned models of ``recipes.yaml``; such a model is in the
    catalog only once its adapter is trained for the recipe as it stands.
    """
    missing = sorted({k.model for k in keys if k.model not in catalog.models})
    if missing:
        raise dg.Failure(
            description=(
                f"no trained adapter for {', '.join(missing)} (a recipes.yaml model whose "
                "adapter is not trained yet, or not since its recipe, base model or train "
                "data changed): materialize those partitions of `adapters` first "
                "(training_job, or `eval-pipeline train --recipe <recipe>`)"
            )
        )


def require_preflight(
    catalog: Catalog, keys: Sequence[PartitionKey], *, slurm_cluster: str | None = None
) -> None:
    """Fail the step before anything is written when the preflight finds problems.

    The failure lists one line per problem with its fix (see ``operations.preflight``).
    ``slurm_cluster`` is the SLURM resource's submitit cluster: ``local`` or ``debug``
    submit nothing to SLURM, so ``sbatch`` is not needed then.
    """
    report = preflight(catalog, keys, submits_to_slurm=slurm_cluster in (None, "slurm"))
    if not report.ok:
        raise dg.Failure(
            description=report.refusal("nothing was generated"),
            metadata={"preflight": dg.MetadataValue.json(report.to_json())},
        )


def runners_for(slurm_runner: Runner) -> dict[str, Runner]:
    """The runner of each ``runs_on`` value of the catalog."""
    return {"inline": InlineRunner(), "slurm": slurm_runner}
