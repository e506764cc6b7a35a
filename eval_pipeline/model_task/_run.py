"""The model-task function: load one model once and do every piece of work of a task with it.

:func:`run_model_task` is what a generation job runs, wherever it runs: in the Dagster step
(the inline runner), on a SLURM node (the SLURM runner, through submitit), in a unit test.
It takes one frozen :class:`~eval_pipeline.model_task.ModelTask`, never imports Dagster,
and writes through the same stages (and so the same shared response cache) everywhere: a
SLURM job requeued after a timeout or a preemption reuses every row already answered.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Any: telemetry and progress as JSON; torch, imported on use.
from typing import Any

import polars as pl

from eval_pipeline.catalog import Catalog, load_catalog
from eval_pipeline.core.schemas import TELEMETRY
from eval_pipeline.engine import Progress, RunControls, RunStats
from eval_pipeline.judge import calibrate_judge
from eval_pipeline.model_task._task import ModelTask, ModelTaskResult, Work, WorkResult
from eval_pipeline.model_task._telemetry import GpuMonitor, peak_rss_gb
from eval_pipeline.providers import Provider, create_provider
from eval_pipeline.stages import RunOrigin, generate, judge_partition
from eval_pipeline.stages.plan import plan_partition
from eval_pipeline.storage import Store, atomic_write_text
from eval_pipeline.training import load_recipes, train_recipe, with_adapter_models

ProgressCallback = Callable[[Work, Progress], None]


def run_model_task(task: ModelTask, progress: ProgressCallback | None = None) -> ModelTaskResult:
    """Load ``task.model`` once and do every piece of ``task.work`` with it.

    A piece of work that fails is recorded with its error and the others go on; a model
    that cannot be built or loaded fails the whole task (the exception propagates). The
    job id and node come from the SLURM environment when there is one. ``progress`` is
    called with each piece of work's progress (inline runs log it); with
    ``task.report_dir`` set the latest progress is also written to ``progress.json``.
    """
    for module in task.imports:
        importlib.import_module(module)
    catalog = load_catalog(task.project_root, load_rows=False)
    # Rows are kept in the store's history under the run that wrote them.
    store = Store(task.store_root, run_id=task.run_id)
    if task.model not in catalog.models:
        # A fine-tuned model ``<base>__<recipe>`` is not in models.yaml: it is its recipe's
        # current adapter in the store.
        recipes = load_recipes(task.project_root, catalog)
        catalog = with_adapter_models(catalog, store, recipes)
    spec = catalog.model(task.model)
    report_dir = Path(task.report_dir) if task.report_dir else None

    provider = create_provider(spec)
    job_id = _job_id()
    where: dict[str, str] = {
        "runs_on": "slurm" if job_id else "inline",
        "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        "job_id": job_id,
    }
    try:
        with GpuMonitor() as gpu:
            start = time.perf_counter()
            # Loaded now, so the load time is measured apart from generation.
            handle = provider.load()
            load_s = time.perf_counter() - start
            seen_models = {id(handle if handle is not None else provider)}
            results: list[WorkResult] = []
            for index, work in enumerate(task.work):

                def on_progress(p: Progress, work: Work = work, index: int = index) -> None:
                    if progress is not None:
                        progress(work, p)
                    _write_progress(report_dir, task, work, index, p)

                print(f"[{task.model}] {work.label}", flush=True)
                before = provider.telemetry()
                results.append(_do(catalog, store, provider, task, work, on_progress, where))
                if work.kind == "generate" and results[-1].ok:
                    local = _local_telemetry(before, provider.telemetry())
                    _write_telemetry(store, task.model, results[-1], load_s, gpu, where, local)
                now = provider.load()
                seen_models.add(id(now if now is not None else provider))
                print(f"[{task.model}] {work.label}: {_summary(results[-1])}", flush=True)
            # Measured before the provider releases the device.
            peak_gb = _peak_accelerator_gb()
    finally:
        provider.close()

    generation_s = sum(r.stats.wall_s for r in results)
    # Cached rows cost no model time, so only newly generated tokens count towards speed.
    new_tokens = sum(r.stats.output_tokens for r in results)
    result = ModelTaskResult(
        model=task.model,
        runs_on=where["runs_on"],
        job_id=job_id,
        node=where["node"],
        attempt=int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        gpu_type=_gpu_type(),
        requested_gres=task.requested_gres,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        model_loads=len(seen_models),
        model_load_s=round(load_s, 3),
        generation_s=round(generation_s, 3),
        new_output_tokens=new_tokens,
        tokens_per_s=round(new_tokens / generation_s, 2) if generation_s > 0 else 0.0,
        peak_accelerator_mem_gb=peak_gb if peak_gb is not None else gpu.peak_mem_gb,
        gpu_util_mean=gpu.util_mean,
        peak_rss_gb=peak_rss_gb(),
        dagster_imported="dagster" in sys.modules,
        results=tuple(results),
    )
    if report_dir is not None:
        atomic_write_text(report_dir / "report.json", result.to_json())
    return result


def _do(
    catalog: Catalog,
    store: Store,
    provider: Provider,
    task: ModelTask,
    work: Work,
    progress: Callable[[Progress], None],
    where: dict[str, str],
) -> WorkResult:
    """One piece of work; its failure is recorded, not raised."""
    try:
        if work.kind == "generate":
            planned = _planned_cost(catalog, store, provider, task, work)
            report = generate(
                catalog,
                store,
                task.model,
                work.dataset,
                sample_limit=task.sample_limit,
                use_cache=task.use_cache,
                provider=provider,
                progress=progress,
                progress_every_s=task.progress_every_s,
                budget_usd=task.budget_usd,
                partition_timeout_s=task.partition_timeout_s,
                request_timeout_s=task.request_timeout_s,
                budget_scope=task.budget_scope,
                route=task.route,
                batch_wait=task.batch_wait,
                batch_fallback_online=task.batch_fallback_online,
                run=RunOrigin(
                    run_id=task.run_id,
                    slurm_job_id=where["job_id"] or None,
                    slurm_node=where["node"] if where["job_id"] else None,
                ),
            )
            return WorkResult(
                work=work,
                path=str(report.path),
                rows=report.rows,
                new_rows=report.new_rows,
                reused_rows=report.reused_rows,
                errors=report.errors,
                prompt_version=report.prompt_version,
                dataset_version=report.dataset_version,
                answer_mode=report.answer_mode,
                plan_cost_usd=planned,
                stats=report.stats,
            )
        if work.kind == "judge":
            stats = judge_partition(
                catalog,
                store,
                task.model,
                work.judged_model,
                work.dataset,
                provider=provider,
                controls=_judge_controls(task, store),
            )
            return WorkResult(work=work, rows=stats.total, reused_rows=stats.cached, stats=stats)
        if work.kind == "train":
            return _train(catalog, store, task, work)
        if work.kind == "calibrate":
            calibration = calibrate_judge(
                catalog,
                store,
                task.model,
                work.rubric,
                provider=provider,
                controls=_judge_controls(task, store),
            )
            return WorkResult(
                work=work,
                path=str(calibration.path),
                rows=calibration.labels,
                stats=RunStats(model_calls=calibration.judge_calls),
            )
        raise ValueError(f"unknown kind of work {work.kind!r}")
    except Exception as exc:  # one failed piece of work must not lose the others
        return WorkResult(work=work, error=f"{type(exc).__name__}: {exc}")


def _planned_cost(
    catalog: Catalog, store: Store, provider: Provider, task: ModelTask, work: Work
) -> float | None:
    """API models: the expected cost ``eval-pipeline plan`` gives, taken before any request.

    None for local models (nothing is billed) and when the plan cannot be made (the
    generation then reports the same problem).
    """
    if not provider.capabilities.async_generate:
        return None
    try:
        return plan_partition(
            catalog,
            store,
            task.model,
            work.dataset,
            sample_limit=task.sample_limit,
            route=task.route,
            use_cache=task.use_cache,
        ).cost_expected_usd
    except Exception:  # the plan is a figure for the metadata; generation decides the outcome
        return None


def _judge_controls(task: ModelTask, store: Store) -> RunControls:
    """The run's limits for a judge's API calls: its budget (shared with the run) and deadline."""
    return RunControls(
        budget_usd=task.budget_usd,
        request_timeout_s=task.request_timeout_s,
        budget_ledger=str(store.budget_ledger(task.budget_scope)) if task.budget_scope else None,
        rate_leases=str(store.rate_leases_dir),
    )


def _write_telemetry(
    store: Store,
    model: str,
    result: WorkResult,
    load_s: float,
    gpu: GpuMonitor,
    where: dict[str, str],
    local: dict[str, Any],
) -> None:
    """Record how the partition's generation ran (the aggregates carry it on)."""
    frame = pl.DataFrame(
        [
            {
                "model": model,
                "dataset": result.work.dataset,
                **where,
                "model_load_s": round(load_s, 3),
                "generation_s": round(result.stats.wall_s, 3),
                "new_output_tokens": result.stats.output_tokens,
                "tokens_per_s": round(result.stats.output_tokens / result.stats.wall_s, 2)
                if result.stats.wall_s > 0
                else 0.0,
                "peak_rss_gb": peak_rss_gb(),
                "gpu_peak_mem_gb": gpu.peak_mem_gb,
                "gpu_util_mean": gpu.util_mean,
                **local,
            }
        ],
        schema=TELEMETRY,
    )
    store.write("telemetry", frame, dataset=result.work.dataset, model=model)


def _local_telemetry(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A local provider's batches during one piece of work, and its padding share."""
    batches = None
    if after.get("batches") is not None:
        batches = int(after["batches"]) - int(before.get("batches") or 0)
    return {"batches": batches, "padding_share": after.get("padding_share")}


def _train(catalog: Catalog, store: Store, task: ModelTask, work: Work) -> WorkResult:
    """Train (or find) the adapter of ``work.recipe``; the task's model is its base.

    The base is already loaded by the task's provider: training copies that load.
    ``path`` is the adapter folder; ``new_rows`` is 1 when it was trained now, and
    ``reused_rows`` 1 when it was found. The full report is the adapter's record
    (:func:`eval_pipeline.training.current_adapter`).
    """
    recipes = load_recipes(task.project_root, catalog)
    if work.recipe not in recipes:
        raise KeyError(f"unknown recipe {work.recipe!r}; known: {', '.join(sorted(recipes))}")
    recipe = recipes[work.recipe]
    if recipe.base != task.model:
        raise ValueError(
            f"recipe {recipe.name!r} trains on {recipe.base!r}, but this task loads {task.model!r}"
        )
    adapter = train_recipe(catalog, store, recipe)
    report = adapter.report
    return WorkResult(
        work=work,
        path=adapter.path,
        rows=report.examples,
        new_rows=0 if adapter.reused else 1,
        reused_rows=1 if adapter.reused else 0,
        prompt_version=adapter.prompt_version,
        dataset_version=adapter.train_version,
        stats=RunStats()
        if adapter.reused
        else RunStats(input_tokens=report.train_tokens, wall_s=report.wall_s),
    )


def _summary(result: WorkResult) -> str:
    if result.error is not None:
        return f"FAILED: {result.error}"
    return f"{result.rows} rows ({result.stats.model_calls} model calls)"


def read_progress(report_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The job's last progress record, or None before its first one."""
    try:
        return json.loads((Path(report_dir) / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_progress(
    report_dir: Path | None, task: ModelTask, work: Work, index: int, p: Progress
) -> None:
    if report_dir is None:
        return
    record = {
        "model": task.model,
        "work": work.label,
        "dataset": work.dataset,
        "work_index": index,
        "works": len(task.work),
        "done": p.done,
        "total": p.total,
        "cached": p.cached,
        "errors": p.errors,
        "output_tokens": p.output_tokens,
        "message": p.message(),
    }
    atomic_write_text(report_dir / "progress.json", json.dumps(record))


def _job_id() -> str:
    array_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    task_id = os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_id and task_id:
        return f"{array_id}_{task_id}"
    return os.environ.get("SLURM_JOB_ID", "")


def _torch_cuda() -> Any:
    # Only a job whose provider already imported torch can have used an accelerator;
    # importing it here would cost seconds for API and fake providers.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda


def _gpu_type() -> str:
    cuda = _torch_cuda()
    if cuda is None:
        return "none"
    return cuda.get_device_name(0)


def _peak_accelerator_gb() -> float | None:
    cuda = _torch_cuda()
    if cuda is None:
        return None
    # This process's allocator peak, or what the device has in use (vLLM keeps its KV cache
    # in engine processes of its own), whichever is larger.
    peaks = []
    for i in range(cuda.device_count()):
        free, total = cuda.mem_get_info(i)
        peaks.append(max(cuda.max_memory_reserved(i), total - free))
    return round(max(peaks) / 2**30, 3)
