"""Runs in other processes that use the same model at the same time, seen through lease files.

Each process running a model against a server holds one lease file in a shared folder
(``<store>/runs/rates/<key>/``) and touches it every second; a lease untouched for
:data:`STALE_S` belongs to a process that is gone and is removed. The number of live
leases splits the catalog's requests-per-minute between the processes, so two runs
launched at once (two Dagster runs, two CLI invocations, SLURM jobs on a shared store)
together stay within the limit instead of each taking all of it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Hashable
from pathlib import Path

STALE_S = 5.0
SUFFIX = ".lease"


class RateLease:
    """This process's lease on ``key`` under ``directory``; a context manager."""

    def __init__(self, directory: str | os.PathLike[str], key: Hashable):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        self.folder = Path(directory) / digest
        host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())
        self.path = self.folder / f"{host}.{os.getpid()}{SUFFIX}"

    def __enter__(self) -> RateLease:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Say this process is still running (re-created if a sweep removed it)."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.path.touch()

    def holders(self) -> int:
        """How many processes hold a live lease on the key, this one included."""
        now = time.time()
        live = 0
        for entry in self.folder.glob(f"*{SUFFIX}"):
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:  # released meanwhile
                continue
            if age <= STALE_S or entry == self.path:
                live += 1
            else:
                entry.unlink(missing_ok=True)
        return max(1, live)
