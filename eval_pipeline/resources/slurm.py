"""The ``slurm`` resource: the SLURM runner's settings, configurable per deployment."""

from __future__ import annotations

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.runners import SlurmRunner, SlurmSettings
from eval_pipeline.storage import Store


class SlurmResource(dg.ConfigurableResource, SlurmSettings):
    """The SLURM runner's settings as a Dagster resource.

    One definition: the fields, their defaults and their docs are
    :class:`~eval_pipeline.runners.SlurmSettings`'s; this adds only :meth:`runner`.
    """

    def runner(
        self, catalog: Catalog, store: Store, *, array_parallelism: int | None = None
    ) -> SlurmRunner:
        """The SLURM runner for ``catalog``'s models, with the run's parallelism cap."""
        settings = SlurmSettings(
            **{name: getattr(self, name) for name in SlurmSettings.model_fields}
        )
        if array_parallelism:
            settings = settings.model_copy(update={"array_parallelism": array_parallelism})
        return SlurmRunner(
            settings,
            project_root=catalog.root,
            store_runs_dir=store.runs_dir,
            profiles={slug: spec.slurm_profile for slug, spec in catalog.models.items()},
            secrets={slug: tuple(catalog.secret_env_names([slug])) for slug in catalog.models},
        )
