"""The SLURM node side of generation: one job loads one model and answers all its datasets.

:func:`generate_on_node` is what a SLURM job runs. It takes one frozen dataclass of plain
data, never imports Dagster, and writes through the same :func:`~eval_pipeline.stages.
generate.generate` stage (and so the same shared response cache) as an inline run: a job
that is requeued after a timeout or a preemption reuses every row already answered.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval_pipeline.catalog import load_catalog
from eval_pipeline.engine import Progress
from eval_pipeline.providers import create_provider
from eval_pipeline.stages.generate import generate
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class GenerationTask:
    """Everything a node needs to generate one model's datasets (plain data only)."""

    project_root: str
    """The project checkout on the shared filesystem (``models.yaml``, ``datasets/``)."""
    store_root: str
    """The Parquet store on the shared filesystem."""
    model: str
    datasets: tuple[str, ...]
    sample_limit: int | None = None
    use_cache: bool = True
    report_dir: str | None = None
    """Where the job writes ``progress.json`` while it runs and ``report.json`` at the end."""
    imports: tuple[str, ...] = ()
    """Modules imported before the catalog loads (e.g. ones that register extra providers)."""
    requested_gres: str | None = None
    """The GRES the job asked for, kept with the job's record."""


@dataclass(frozen=True)
class DatasetResult:
    """One dataset's generation, as written by the job."""

    dataset: str
    path: str
    rows: int
    new_rows: int
    reused_rows: int
    errors: int
    prompt_version: str
    dataset_version: str
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    wall_s: float


@dataclass(frozen=True)
class NodeReport:
    """What one job did: where it ran, how the model loaded and how fast it generated."""

    model: str
    job_id: str
    node: str
    attempt: int
    gpu_type: str
    requested_gres: str | None
    cuda_visible_devices: str | None
    model_loads: int
    model_load_s: float
    generation_s: float
    new_output_tokens: int
    tokens_per_s: float
    peak_accelerator_mem_gb: float | None
    peak_rss_gb: float
    dagster_imported: bool
    datasets: tuple[DatasetResult, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def generate_on_node(task: GenerationTask) -> NodeReport:
    """Load ``task.model`` once and generate every dataset of ``task`` with it.

    Runs anywhere (a SLURM job, a subprocess, a test): the job id and node come from the
    SLURM environment when there is one.
    """
    for module in task.imports:
        importlib.import_module(module)
    catalog = load_catalog(task.project_root, load_rows=False)
    store = Store(task.store_root)
    spec = catalog.model(task.model)
    report_dir = Path(task.report_dir) if task.report_dir else None

    provider = create_provider(spec)
    start = time.perf_counter()
    # Load now, so the load time is measured apart from generation (local providers
    # expose their loaded model as ``loaded``; API providers have nothing to load).
    loaded = getattr(provider, "loaded", None)
    load_s = time.perf_counter() - start
    seen_models = {id(loaded if loaded is not None else provider)}

    results: list[DatasetResult] = []
    peak_gb: float | None = None
    try:
        for index, dataset in enumerate(task.datasets):

            def progress(p: Progress, dataset: str = dataset, index: int = index) -> None:
                _write_progress(report_dir, task, dataset, index, p)

            print(f"[{task.model}] generating {dataset}", flush=True)
            report = generate(
                catalog,
                store,
                task.model,
                dataset,
                sample_limit=task.sample_limit,
                use_cache=task.use_cache,
                provider=provider,
                progress=progress,
                progress_every_s=5.0,
            )
            now_loaded = getattr(provider, "loaded", None)
            seen_models.add(id(now_loaded if now_loaded is not None else provider))
            stats = report.stats
            results.append(
                DatasetResult(
                    dataset=dataset,
                    path=str(report.path),
                    rows=report.rows,
                    new_rows=report.new_rows,
                    reused_rows=report.reused_rows,
                    errors=report.errors,
                    prompt_version=report.prompt_version,
                    dataset_version=report.dataset_version,
                    model_calls=stats.model_calls,
                    input_tokens=stats.input_tokens,
                    output_tokens=stats.output_tokens,
                    cost_usd=stats.cost_usd,
                    wall_s=stats.wall_s,
                )
            )
            print(
                f"[{task.model}] {dataset}: {report.rows} rows ({report.new_rows} new)", flush=True
            )
        # Measured before the provider releases the device.
        peak_gb = _peak_accelerator_gb()
    finally:
        provider.close()

    generation_s = sum(r.wall_s for r in results)
    # Cached rows cost no model time, so only newly generated tokens count towards speed.
    new_tokens = sum(r.output_tokens for r in results)
    node_report = NodeReport(
        model=task.model,
        job_id=_job_id(),
        node=os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        attempt=int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        gpu_type=_gpu_type(),
        requested_gres=task.requested_gres,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        model_loads=len(seen_models),
        model_load_s=round(load_s, 3),
        generation_s=round(generation_s, 3),
        new_output_tokens=new_tokens,
        tokens_per_s=round(new_tokens / generation_s, 2) if generation_s > 0 else 0.0,
        peak_accelerator_mem_gb=peak_gb,
        peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        dagster_imported="dagster" in sys.modules,
        datasets=tuple(results),
    )
    if report_dir is not None:
        _write_json(report_dir / "report.json", node_report.to_json())
    return node_report


def read_progress(report_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The job's last progress record, or None before its first one."""
    try:
        return json.loads((Path(report_dir) / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_progress(
    report_dir: Path | None, task: GenerationTask, dataset: str, index: int, p: Progress
) -> None:
    if report_dir is None:
        return
    record = {
        "model": task.model,
        "dataset": dataset,
        "dataset_index": index,
        "datasets": len(task.datasets),
        "done": p.done,
        "total": p.total,
        "cached": p.cached,
        "errors": p.errors,
        "output_tokens": p.output_tokens,
        "message": p.message(),
    }
    _write_json(report_dir / "progress.json", json.dumps(record))


def _write_json(path: Path, text: str) -> None:
    # Readers on other machines see a whole file or the previous one, never half of it.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


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
