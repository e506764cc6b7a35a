"""What a model job is given and what it gives back: plain, frozen data.

The same task runs in the Dagster step (the inline runner) and on a SLURM node (the
SLURM runner), and both hand back the same :class:`ModelTaskResult`; the Dagster side builds
its metadata and decides failures from that one type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from eval_pipeline.engine import RunStats

WorkKind = Literal["generate", "judge", "calibrate", "train"]


@dataclass(frozen=True)
class Work:
    """One piece of work for the task's model.

    ``generate``: answer ``dataset``'s samples (the partition ``dataset|<task model>``).
    ``judge``: rate ``judged_model``'s generations on ``dataset`` with every rubric of the
    dataset's ``llm_judge`` scorers that names the task's model as a judge, writing the
    judge's rows of the partition's ``judgements`` (the score stage reads them there).
    ``calibrate``: rate the labelled responses of ``rubric`` and fit its calibration.
    ``train``: train the LoRA adapter of ``recipe`` (``recipes.yaml``) on the task's model,
    which must be the recipe's base, or find it in the store when nothing changed (see
    :mod:`eval_pipeline.training`).
    """

    kind: WorkKind
    dataset: str = ""
    judged_model: str = ""
    rubric: str = ""
    recipe: str = ""

    @property
    def label(self) -> str:
        """A short name for logs and result lookups."""
        if self.kind == "generate":
            return self.dataset
        if self.kind == "judge":
            return f"judge {self.dataset}|{self.judged_model}"
        if self.kind == "train":
            return f"train {self.recipe}"
        return f"calibrate {self.rubric}"


@dataclass(frozen=True)
class ModelTask:
    """Everything one job needs: a model, the work to do with it, and the run's limits.

    The job loads the model once and does every piece of its work: generate datasets
    (a generator), calibrate rubrics and judge partitions (a judge), or train adapters
    (a recipe's base).
    """

    project_root: str
    """The project checkout (``models.yaml``, ``datasets/``): on a shared filesystem for SLURM."""
    store_root: str
    """The Parquet store, likewise."""
    model: str
    """The catalog model this job loads (a generator or a judge)."""
    work: tuple[Work, ...]
    sample_limit: int | None = None
    use_cache: bool = True
    budget_usd: float | None = None
    """API models: the most the new requests may cost (see ``RunControls``): this task's
    requests, or with ``budget_scope`` everything of that run (partitions, judges, jobs)."""
    budget_scope: str | None = None
    """The run whose budget this task shares (the Dagster run id, or a CLI invocation's)."""
    run_id: str | None = None
    """The Dagster run the task belongs to, recorded on every row it writes."""
    partition_timeout_s: float | None = None
    """API models: wall-clock cap of each partition's generation."""
    request_timeout_s: float | None = None
    """API models: per-request deadline, over the catalog's."""
    progress_every_s: float = 10.0
    route: str | None = None
    """API models: ``batch`` or ``online`` over the catalog's ``route`` (a run's tag)."""
    batch_wait: bool = True
    """The batch route: wait for the batches in the task, else submit them and end."""
    batch_fallback_online: bool = False
    """The batch route: send online what the batches left unanswered."""
    report_dir: str | None = None
    """Where the job writes ``progress.json`` while it runs and ``report.json`` at the end."""
    imports: tuple[str, ...] = ()
    """Modules imported before the catalog loads (e.g. ones that register extra providers)."""
    requested_gres: str | None = None
    """The GRES the job asked for, kept with the job's record."""

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets this task generates."""
        return tuple(w.dataset for w in self.work if w.kind == "generate")


@dataclass(frozen=True)
class WorkResult:
    """How one piece of work went; ``error`` is set when it failed (rows may still be written)."""

    work: Work
    error: str | None = None
    path: str = ""
    rows: int = 0
    new_rows: int = 0
    reused_rows: int = 0
    errors: int = 0
    prompt_version: str = ""
    dataset_version: str = ""
    answer_mode: str = ""  # generate work: how the model answered (core.types.AnswerMode)
    stats: RunStats = field(default_factory=RunStats)
    """The engine's counters of the work, as the engine left them (calls, tokens, cost)."""
    # API models: the expected cost planned before any request (``eval-pipeline plan``).
    plan_cost_usd: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ModelTaskResult:
    """What one job did: where it ran, how the model loaded, how fast it generated."""

    model: str
    runs_on: str
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
    gpu_util_mean: float | None
    peak_rss_gb: float
    dagster_imported: bool
    results: tuple[WorkResult, ...] = field(default_factory=tuple)

    def result_for(self, work: Work) -> WorkResult | None:
        return next((r for r in self.results if r.work == work), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)
