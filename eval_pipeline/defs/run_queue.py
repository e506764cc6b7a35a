"""The run queue's tags: what a run draws on (an API's quota, a SLURM profile, the host).

The production run queue (``deploy/dagster.yaml``) limits runs by these tags. The
schedule and sensors write them on every run they request (:func:`queue_tags`);
:class:`CatalogQueuedRunCoordinator` writes them on every other run of one model as it
is queued: a backfill launched from the UI, a run launched from the launchpad or the
command line. Dagster gives those runs no tags of their own per partition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import dagster as dg

from eval_pipeline.catalog import Catalog, default_project_root, load_catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.providers.registry import provider_class
from eval_pipeline.training import ADAPTER_SEPARATOR

PROVIDER_TAG = "eval_pipeline/provider"
RUNS_ON_TAG = "eval_pipeline/runs_on"
# API models: openai | anthropic | openai-compatible (another server's own quota).
API_TAG = "eval_pipeline/api"
# OpenAI-compatible servers: the server's host[:port], limited per server.
API_SERVER_TAG = "eval_pipeline/api_server"
# SLURM models: the cluster profile (slurm/<name>.yaml), i.e. the GPU kind.
SLURM_PROFILE_TAG = "eval_pipeline/slurm_profile"
# Local models (no API) that run inline, in the run worker's process on the daemon's host.
LOCAL_MODEL_TAG = "eval_pipeline/local_model"
# The profile a SLURM model without one runs with (runners/_slurm.py).
DEFAULT_SLURM_PROFILE = "cpu"

# What names the model of a run: Dagster's dimension tag on a one-partition run, the
# project's own on a run over several partitions (defs/schedules.py), else a partition or
# a range within one model.
_MODEL_TAGS = ("dagster/partition/model", "eval_pipeline/batch_model")
_KEY_TAGS = (
    ("dagster/partition", "dagster/partition"),
    ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end"),
)

_log = logging.getLogger(__name__)


def queue_tags(model: ModelSpec) -> dict[str, str]:
    """The run queue's tags of a run of ``model``."""
    tags = {PROVIDER_TAG: model.provider, RUNS_ON_TAG: model.runs_on}
    provider = provider_class(model.provider)
    quota = provider.api_quota(model)
    if quota is not None:
        api, server = quota
        tags[API_TAG] = api
        if server is not None:
            tags[API_SERVER_TAG] = server
    if model.runs_on == "slurm":
        tags[SLURM_PROFILE_TAG] = model.slurm_profile or DEFAULT_SLURM_PROFILE
    elif quota is None and provider.holds_model:
        tags[LOCAL_MODEL_TAG] = "inline"
    return tags


def run_model(tags: Mapping[str, str]) -> str | None:
    """The one model a run with ``tags`` evaluates, or None (no partition, or several)."""
    for tag in _MODEL_TAGS:
        if tags.get(tag):
            return tags[tag]
    for first, last in _KEY_TAGS:
        try:
            models = {PartitionKey.parse(tags[first]).model, PartitionKey.parse(tags[last]).model}
        except (KeyError, ValueError):
            continue
        return models.pop() if len(models) == 1 else None
    return None


def missing_queue_tags(catalog: Catalog, tags: Mapping[str, str]) -> dict[str, str]:
    """The queue tags a run with ``tags`` lacks; tags it already has are left alone.

    A fine-tuned ``<base>__<recipe>`` model runs where its base runs.
    """
    model = run_model(tags)
    if model is None:
        return {}
    spec = catalog.models.get(model) or catalog.models.get(model.split(ADAPTER_SEPARATOR)[0])
    if spec is None:
        return {}
    return {k: v for k, v in queue_tags(spec).items() if k not in tags}


@lru_cache(maxsize=1)  # the catalog as models.yaml stands now; an edit replaces it
def _catalog(root: str, mtime_ns: int) -> Catalog:
    return load_catalog(root, load_rows=False)


class CatalogQueuedRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's run queue, which first tags each run with what its model draws on.

    Configured like ``QueuedRunCoordinator`` (``run_coordinator`` in ``dagster.yaml``).
    The catalog is the project's (``$EVAL_PIPELINE_ROOT``), read again when
    ``models.yaml`` changes. A run whose model is not in the catalog, or a catalog that
    does not load, leaves the run as it is: it is queued, bound by the global limit only.
    """

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        try:
            root = default_project_root()
            mtime = (Path(root) / "models.yaml").stat().st_mtime_ns
            extra = missing_queue_tags(_catalog(root, mtime), run.tags)
        except Exception:
            _log.exception("run %s: no queue tags (the catalog did not load)", run.run_id)
            extra = {}
        if extra:
            self._instance.add_run_tags(run.run_id, extra)
            run = run.with_tags({**run.tags, **extra})
            context = dg.SubmitRunContext(run, context.workspace)
        return super().submit_run(context)
