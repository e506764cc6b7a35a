"""The SLURM runner: each task is one SLURM job, submitted through submitit as job arrays."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from eval_pipeline.model_task import ModelTask, read_progress, run_model_task
from eval_pipeline.runners._base import Log, Runner, Submission, TaskOutcome
from eval_pipeline.slurm import JobStatus, SlurmBatch, load_profile, profiles_dir, submit_array


class SlurmSettings(BaseModel):
    """How models whose catalog entry says ``runs_on: slurm`` are submitted and watched.

    Each task (one model and its work in the run) becomes one SLURM job; the jobs of models
    sharing a profile form one job array whose parallelism is capped by the profile's
    ``array_parallelism`` (or ``array_parallelism`` here). The Dagster ``slurm`` resource
    (``SlurmResource``, one layer up) is these settings, configurable per deployment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: str | None = None
    """Where submitit keeps job scripts, logs and results (a shared filesystem); None:
    ``<store>/runs/slurm``. Each run gets its own subfolder."""
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


@dataclass
class SlurmSubmission(Submission):
    """The jobs of one submission: one per task, as one array per cluster profile."""

    tasks: list[ModelTask]
    batch: SlurmBatch
    settings: SlurmSettings
    _last: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _last_full: float = 0.0

    @property
    def job_ids(self) -> dict[str, str]:
        return {str(k): v for k, v in self.batch.job_ids.items()}

    def wait(self, log: Log | None = None) -> list[TaskOutcome]:
        """Wait for every job, logging job id, state, node and elapsed time.

        A line is logged when a job's state or node changes, and for every job (with the
        node's own progress line) every ``progress_every_s``. Whatever interrupts the
        wait (a terminated run raises an interrupt here) cancels the jobs still queued or
        running before it propagates.
        """
        report_dirs = {t.model: t.report_dir for t in self.tasks}

        def on_progress(statuses: list[JobStatus]) -> None:
            if log is None:
                return
            now = time.monotonic()
            full = now - self._last_full >= self.settings.progress_every_s
            for status in statuses:
                model = str(status.key)
                seen = (status.state, status.node)
                if full or self._last.get(model) != seen:
                    progress = read_progress(report_dirs[model] or "") or {}
                    detail = f"; {progress['work']}: {progress['message']}" if progress else ""
                    log.info(f"{model}: {status.message()}{detail}")
                self._last[model] = seen
            if full:
                self._last_full = now

        jobs = self.batch.wait(poll_s=self.settings.poll_interval_s, on_progress=on_progress)
        outcomes = []
        for task in self.tasks:
            job = jobs[task.model]
            outcomes.append(
                TaskOutcome(
                    task,
                    job.result if job.ok else None,
                    error=None if job.ok else f"SLURM job {job.job_id} {job.state}: {job.error}",
                    job_id=job.job_id,
                    log_tail=job.log_tail,
                    log_path=job.stderr_path,
                )
            )
        return outcomes

    def cancel(self) -> list[str]:
        return self.batch.cancel()


class SlurmRunner(Runner):
    """Runs each task as one SLURM job; the jobs of tasks sharing a profile form one array.

    A task's model loads once in its job and serves all of the task's work. The profile is
    the model's ``slurm_profile`` (``cpu`` when unset); the array's parallelism is capped by
    the profile's ``array_parallelism`` or the settings'.
    """

    runs_on = "slurm"

    def __init__(
        self,
        settings: SlurmSettings,
        *,
        project_root: str | Path,
        store_runs_dir: str | Path,
        profiles: dict[str, str | None],
        secrets: dict[str, tuple[str, ...]] | None = None,
    ):
        """A runner for a catalog's models.

        ``profiles`` maps each model to its catalog ``slurm_profile``; ``secrets`` to the
        environment variables holding its API key, the only ones of their kind its job gets.
        """
        self.settings = settings
        self.project_root = Path(project_root)
        self.store_runs_dir = Path(store_runs_dir)
        self.profiles = profiles
        self.secrets = secrets or {}

    def run_folder(self, run_id: str) -> Path:
        base = Path(self.settings.folder) if self.settings.folder else self.store_runs_dir / "slurm"
        return base / run_id

    def submit(self, tasks: Sequence[ModelTask], *, run_id: str) -> SlurmSubmission:
        folder = self.run_folder(run_id)
        root = (
            Path(self.settings.profiles_dir)
            if self.settings.profiles_dir
            else profiles_dir(self.project_root)
        )
        by_profile: dict[str, list[ModelTask]] = {}
        for task in tasks:
            by_profile.setdefault(self.profiles.get(task.model) or "cpu", []).append(task)
        batches = []
        prepared: list[ModelTask] = []
        try:
            for profile_name, group in sorted(by_profile.items()):
                profile = load_profile(root, profile_name)
                jobs = [
                    dataclasses.replace(
                        task,
                        report_dir=str(folder / "reports" / task.model),
                        imports=tuple(dict.fromkeys((*task.imports, *self.settings.imports))),
                        requested_gres=profile.gres,
                    )
                    for task in group
                ]
                prepared.extend(jobs)
                batches.append(
                    submit_array(
                        run_model_task,
                        jobs,
                        [t.model for t in jobs],
                        profile=profile,
                        folder=folder / profile_name,
                        name=f"eval-{run_id[:8]}-{profile_name}",
                        array_parallelism=self.settings.array_parallelism,
                        cluster=self.settings.cluster,
                        log_lines=self.settings.log_tail_lines,
                        env_names=sorted(
                            {name for t in jobs for name in self.secrets.get(t.model, ())}
                        ),
                    )
                )
        except BaseException:
            # A later profile failed to submit: do not leave the earlier arrays running.
            for batch in batches:
                batch.cancel()
            raise
        by_model = {t.model: t for t in prepared}
        return SlurmSubmission(
            tasks=[by_model[t.model] for t in tasks],
            batch=SlurmBatch.merge(batches),
            settings=self.settings,
        )
