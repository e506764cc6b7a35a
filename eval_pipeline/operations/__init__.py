"""Plain operations logic behind the schedule, the sensors and the CLI (no Dagster here).

Alerts (``_alerts.py``: regression events, payloads and their delivery to a webhook), the regression events read from check
results, which partitions the nightly suite is due to re-evaluate, the Prometheus
metrics of the stored results, the preflight of a planned run, and whether a STARTED
run's process is gone (the Dagster side, ``eval_pipeline.defs.mark_dead_runs``, marks it).
"""

from eval_pipeline.operations._alerts import (
    PostResult,
    RegressionEvent,
    post_json,
    regression_alert,
    regression_events,
    run_failure_alert,
)
from eval_pipeline.operations._due import (
    DuePartition,
    LastResult,
    behavioural_entry,
    catalog_additions,
    catalog_fingerprint,
    inputs_fingerprint,
    partition_fingerprints,
    select_due,
)
from eval_pipeline.operations._gate import (
    POWER_HEADER,
    GatePower,
    GateSettings,
    gate_power,
)
from eval_pipeline.operations._metrics import StoreCollector
from eval_pipeline.operations._preflight import (
    Note,
    PreflightReport,
    Problem,
    catalog_preflight,
    preflight,
)
from eval_pipeline.operations._run_history import HOST_TAG, DeadRun, host_tags, process_gone

__all__ = [
    "HOST_TAG",
    "POWER_HEADER",
    "GatePower",
    "GateSettings",
    "DeadRun",
    "DuePartition",
    "LastResult",
    "Note",
    "PreflightReport",
    "Problem",
    "PostResult",
    "RegressionEvent",
    "StoreCollector",
    "catalog_additions",
    "catalog_fingerprint",
    "catalog_preflight",
    "gate_power",
    "host_tags",
    "behavioural_entry",
    "inputs_fingerprint",
    "partition_fingerprints",
    "post_json",
    "preflight",
    "process_gone",
    "regression_alert",
    "regression_events",
    "run_failure_alert",
    "select_due",
]
