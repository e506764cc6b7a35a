"""Telling a killed run's process from a live one (plain Python, no Dagster).

A run whose process was killed (SIGKILL, out of memory, a closed terminal) stays
``STARTED`` in the run history for ever. ``eval_pipeline.defs.mark_dead_runs`` reads the
STARTED runs from the Dagster instance and asks :func:`process_gone` about each run's
process; this module holds what needs no instance: the host tag, the process check and
the record of what was done.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

# Runs started by ``eval-pipeline run`` carry the host they run on, so that marking dead
# runs on a shared instance only judges this machine's processes.
HOST_TAG = "eval_pipeline/host"


def host_tags() -> dict[str, str]:
    """Tags for a run this process executes: the host whose process table holds it."""
    return {HOST_TAG: socket.gethostname()}


@dataclass(frozen=True)
class DeadRun:
    """A STARTED run whose process is gone, and what was done about it."""

    run_id: str
    job_name: str
    pid: int | None
    reason: str
    marked: bool

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "no pid recorded"
        verb = "marked run" if self.marked else "would mark run"
        return f"{verb} {self.run_id} ({self.job_name}, {pid}) as FAILURE: {self.reason}"


def process_gone(pid: int, run_started: float) -> str | None:
    """Why process ``pid`` is not the run's process any more, or None while it runs.

    It is gone when no process has its pid, when that pid is a zombie, or when the
    process with that pid started after the run did (the pid was reused).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "no such process"
    except PermissionError:
        pass  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # no /proc to ask (not Linux): the pid exists, so assume it runs
    if fields[0] in ("Z", "X"):
        return "the process has exited (zombie)"
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    process_started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    # The run's process existed before its first event; a later start is another process.
    if process_started > run_started + 2.0:
        return "the pid now belongs to a process started after the run"
    return None
