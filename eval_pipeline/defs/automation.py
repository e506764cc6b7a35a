"""Declarative automation: the versions sensor and the automation condition sensor.

``versions_sensor`` turns an edit on disk (a rubric, a prompt, a scorer's parameter, a
model's revision) into a new data version of one ``versions/*`` partition (see
defs/versions.py); ``evaluation_automation`` evaluates the evaluation assets' automation
conditions, which request only the grid partitions that read a changed version.
Reading files on disk is what a condition cannot do, hence a sensor for that part.
"""

from __future__ import annotations

import json

import dagster as dg

from eval_pipeline.defs.adapters import recipes_by_model
from eval_pipeline.defs.schedules import automation_status
from eval_pipeline.defs.versions import changed_versions, current_versions, version_event
from eval_pipeline.resources import CatalogResource

AUTOMATION_SENSOR = "evaluation_automation"
VERSIONS_SENSOR = "versions_sensor"


def _status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus(automation_status().value)


def versions_sensor(grid: dg.MultiPartitionsDefinition) -> dg.SensorDefinition:
    """``versions_sensor``: records a new version of each ``versions/*`` partition that changed."""
    grid_models = grid.get_partitions_def_for_dimension("model")

    @dg.sensor(name=VERSIONS_SENSOR, minimum_interval_seconds=60, default_status=_status())
    def versions(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
        """Records the new version of each model, prompt, scorer set and rubric edited on disk.

        Hashes every model entry and each dataset's prompt and rows, scorers and judges
        (defs/versions.py) and compares them with the versions this sensor last saw (its
        cursor). Each partition that changed gets a materialization of its ``versions/*``
        asset carrying the new hash as its data version; the evaluation assets' automation
        conditions then request the cells that read it (``evaluation_automation``). The
        first tick only records the versions: switching the sensor on re-evaluates nothing.
        """
        cat = catalog.load()
        models = [m for m in grid_models.get_partition_keys() if m in cat.models]
        adapters = set(recipes_by_model(cat))
        current = current_versions(cat, [m for m in models if m not in adapters])
        cursor = json.dumps(current, sort_keys=True)
        if not context.cursor:
            total = sum(len(v) for v in current.values())
            return dg.SensorResult(skip_reason=f"recorded {total} versions", cursor=cursor)
        changes = changed_versions(current, json.loads(context.cursor))
        if not changes:
            return dg.SensorResult(skip_reason="no version changed", cursor=cursor)
        for name, partition, version in changes:
            context.log.info(f"versions/{name} {partition}: new version {version}")
        return dg.SensorResult(
            asset_events=[version_event(*change) for change in changes], cursor=cursor
        )

    return versions


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """``evaluation_automation``: evaluates the evaluation assets' automation conditions.

    Named here (instead of Dagster's ``default_automation_condition_sensor``) so that it
    starts stopped like every other automation unless ``EVAL_PIPELINE_AUTOMATION=on``.
    """
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.groups("evaluation"),
        default_status=_status(),
        minimum_interval_seconds=60,
        description=(
            "Requests the grid partitions whose inputs changed (a new versions/* data "
            "version recorded by versions_sensor), each asset once its upstream is done."
        ),
    )
