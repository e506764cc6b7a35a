"""Repairs of the Dagster run history: runs whose process was killed are marked failed.

``eval-pipeline runs mark-dead`` calls :func:`mark_dead_runs`, and ``eval-pipeline run``
does before it starts; the process check itself is plain
(:func:`eval_pipeline.operations.process_gone`).
"""

from __future__ import annotations

import socket

import dagster as dg

from eval_pipeline.operations import HOST_TAG, DeadRun, process_gone


def mark_dead_runs(
    instance: dg.DagsterInstance, *, dry_run: bool = False, assume_local: bool = False
) -> list[DeadRun]:
    """Mark every STARTED run whose process no longer exists on this host as FAILURE.

    The process is the one that emitted the run's ``RUN_START`` event (the run worker,
    or the process that called ``execute_in_process``). It is gone when no process has
    its pid, when that pid is a zombie, or when the process with that pid started after
    the run did (the pid was reused). Runs tagged with another host are skipped; untagged
    runs are judged only on an instance whose runs live in SQLite (a DAGSTER_HOME on this
    machine) or with ``assume_local``. Uses ``instance.report_run_failed``, so the run
    history, sensors and the UI see an ordinary failure.
    """
    host = socket.gethostname()
    local_storage = "sqlite" in type(instance.run_storage).__name__.lower()
    dead = []
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    )
    for record in records:
        run = record.dagster_run
        tagged = run.tags.get(HOST_TAG)
        if tagged is not None and tagged != host:
            continue
        if tagged is None and not (local_storage or assume_local):
            continue
        starts = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
        ).records
        event = starts[0].event_log_entry.dagster_event if starts else None
        pid = event.pid if event is not None else None
        if pid is None:
            continue  # nothing to check a process against
        started = record.start_time or starts[0].timestamp
        reason = process_gone(pid, started)
        if reason is None:
            continue
        message = f"its process ({host}, pid {pid}) is gone: {reason}; marked by eval-pipeline"
        if not dry_run:
            instance.report_run_failed(run, message=message)
        dead.append(DeadRun(run.run_id, run.job_name, pid, reason, marked=not dry_run))
    return dead
