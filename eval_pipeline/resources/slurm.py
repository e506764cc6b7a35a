"""The ``slurm`` resource: the settings of the SLURM runner, configurable per deployment."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.runners import SlurmRunner, SlurmSettings
from eval_pipeline.storage import Store


class SlurmResource(dg.ConfigurableResource):
    """How models whose catalog entry says ``runs_on: slurm`` are submitted and watched.

    Each task (one model and its work in the run) becomes one SLURM job; the jobs of models
    sharing a profile form one job array whose parallelism is capped by the profile's
    ``array_parallelism`` (or ``array_parallelism`` here).
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

    def runner(
        self, catalog: Catalog, store: Store, *, array_parallelism: int | None = None
    ) -> SlurmRunner:
        """The SLURM runner for ``catalog``'s models, with the run's parallelism cap."""
        settings = SlurmSettings(
            folder=self.folder,
            profiles_dir=self.profiles_dir,
            array_parallelism=array_parallelism or self.array_parallelism,
            poll_interval_s=self.poll_interval_s,
            progress_every_s=self.progress_every_s,
            log_tail_lines=self.log_tail_lines,
            cluster=self.cluster,
            imports=tuple(self.imports),
        )
        return SlurmRunner(
            settings,
            project_root=catalog.root,
            store_runs_dir=store.runs_dir,
            profiles={slug: spec.slurm_profile for slug, spec in catalog.models.items()},
            secrets={slug: tuple(catalog.secret_env_names([slug])) for slug in catalog.models},
        )
