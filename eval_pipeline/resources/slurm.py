"""The ``slurm`` resource: generation of SLURM-hosted models as submitit job arrays."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.slurm import (
    JobOutcome,
    JobStatus,
    SlurmBatch,
    load_profile,
    profiles_dir,
    submit_array,
)
from eval_pipeline.stages.remote import GenerationTask, generate_on_node, read_progress
from eval_pipeline.storage import Store


@dataclass
class GenerationSubmission:
    """The SLURM jobs of one Dagster step: one job per model, as arrays per profile."""

    batch: SlurmBatch
    report_dirs: dict[str, Path]
    folder: Path
    poll_interval_s: float
    progress_every_s: float
    _last: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _last_full: float = 0.0

    @property
    def job_ids(self) -> dict[str, str]:
        return {str(k): v for k, v in self.batch.job_ids.items()}

    def wait(self, log: Any | None = None) -> dict[str, JobOutcome]:
        """Wait for every job, logging job id, state, node and elapsed time.

        A line is logged when a job's state or node changes, and for every job (with the
        node's own progress line) every ``progress_every_s``.

        Raises:
            BaseException: whatever interrupted the wait (a terminated run raises an
                interrupt here); the jobs still queued or running are cancelled first.
        """

        def on_progress(statuses: list[JobStatus]) -> None:
            if log is None:
                return
            now = time.monotonic()
            full = now - self._last_full >= self.progress_every_s
            for status in statuses:
                model = str(status.key)
                seen = (status.state, status.node)
                if full or self._last.get(model) != seen:
                    progress = read_progress(self.report_dirs[model]) or {}
                    detail = f"; {progress['dataset']}: {progress['message']}" if progress else ""
                    log.info(f"{model}: {status.message()}{detail}")
                self._last[model] = seen
            if full:
                self._last_full = now

        outcomes = self.batch.wait(poll_s=self.poll_interval_s, on_progress=on_progress)
        return {str(k): v for k, v in outcomes.items()}

    def cancel(self) -> list[str]:
        """Cancel the jobs that have not finished."""
        return self.batch.cancel()


class SlurmResource(dg.ConfigurableResource):
    """Runs generation for models whose catalog entry says ``runs_on: slurm``.

    Each model becomes one SLURM job (the model loads once and serves all of its datasets
    in the run); the jobs of models sharing a profile form one job array whose parallelism
    is capped by the profile's ``array_parallelism`` (or ``array_parallelism`` here).
    """

    folder: str | None = None
    """Where submitit keeps job scripts, logs and results (a shared filesystem); None:
    ``<store>/runs/slurm``. Each Dagster run gets its own subfolder."""
    profiles_dir: str | None = None
    """Where the cluster profiles live; None: ``<project root>/slurm``."""
    array_parallelism: int | None = None
    """Caps how many jobs of an array run at once, over the profile's own cap."""
    poll_interval_s: float = 5.0
    """Seconds between scheduler queries while waiting."""
    progress_every_s: float = 30.0
    """Seconds between full progress lines in the run log."""
    log_tail_lines: int = 40
    """Lines of a failed job's log shown with its failure."""
    cluster: str | None = None
    """submitit cluster: None detects SLURM; ``local`` or ``debug`` run without one."""
    imports: list[str] = []
    """Modules the jobs import before loading the catalog (extra providers)."""

    def run_folder(self, store: Store, run_id: str) -> Path:
        base = Path(self.folder) if self.folder else store.runs_dir / "slurm"
        return base / run_id

    def submit_generation(
        self,
        catalog: Catalog,
        store: Store,
        datasets_by_model: Mapping[str, Sequence[str]],
        *,
        run_id: str,
        sample_limit: int | None = None,
        use_cache: bool = True,
        array_parallelism: int | None = None,
    ) -> GenerationSubmission:
        """Submit one job per model (arrays per profile) without waiting for them."""
        folder = self.run_folder(store, run_id)
        profiles_root = Path(self.profiles_dir) if self.profiles_dir else profiles_dir(catalog.root)
        by_profile: dict[str, list[str]] = {}
        for model in datasets_by_model:
            spec = catalog.model(model)
            by_profile.setdefault(spec.slurm_profile or "cpu", []).append(model)
        batches = []
        report_dirs: dict[str, Path] = {}
        try:
            for profile_name, models in sorted(by_profile.items()):
                profile = load_profile(profiles_root, profile_name)
                tasks = []
                for model in models:
                    report_dirs[model] = folder / "reports" / model
                    tasks.append(
                        GenerationTask(
                            project_root=str(catalog.root),
                            store_root=str(store.root),
                            model=model,
                            datasets=tuple(datasets_by_model[model]),
                            sample_limit=sample_limit,
                            use_cache=use_cache,
                            report_dir=str(report_dirs[model]),
                            imports=tuple(self.imports),
                            requested_gres=profile.gres,
                        )
                    )
                batches.append(
                    submit_array(
                        generate_on_node,
                        tasks,
                        models,
                        profile=profile,
                        folder=folder / profile_name,
                        name=f"eval-{run_id[:8]}-{profile_name}",
                        array_parallelism=array_parallelism or self.array_parallelism,
                        cluster=self.cluster,
                        log_lines=self.log_tail_lines,
                    )
                )
        except BaseException:
            # A later profile failed to submit: do not leave the earlier arrays running.
            for batch in batches:
                batch.cancel()
            raise
        return GenerationSubmission(
            batch=SlurmBatch.merge(batches),
            report_dirs=report_dirs,
            folder=folder,
            poll_interval_s=self.poll_interval_s,
            progress_every_s=self.progress_every_s,
        )
