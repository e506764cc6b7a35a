"""Processes the tests start: each dies with the test that started it, and with pytest.

:func:`started` runs a command for the length of a ``with`` block; :func:`start` and
:func:`stop` are the two halves, for helpers with a start/stop life of their own. Each
process leads a process group of its own (``start_new_session``), and :func:`stop` ends
the whole group, whatever the block raised: SIGTERM, a bounded wait, then SIGKILL.

When the Python process that started them dies (pytest killed with SIGKILL included),
two things end them: the kernel sends SIGKILL to each process it started
(``PR_SET_PDEATHSIG``, Linux; "the parent" is the starting *thread*, so start long-lived
processes from the main thread), and a watchdog process kills every group still
registered, which also reaches the children those processes started. At the end of a test
session, ``conftest.py`` kills the groups a test left running and says so
(:func:`kill_leftovers`).
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
# Reads "+PGID" / "-PGID" lines; at end of input (its parent is gone) kills what is left.
_WATCHDOG = """
import os, signal, sys
groups = set()
for line in sys.stdin:
    (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_running: dict[int, subprocess.Popen] = {}  # process group id -> its leader
_watchdog: subprocess.Popen | None = None

if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after the fork
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
else:
    _prctl = None


def _dies_with(parent: int):
    """What the child runs before exec: SIGKILL when ``parent`` dies (or is already gone)."""

    def arm() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def _tell_watchdog(line: str) -> None:
    """Register (``+PGID``) or forget (``-PGID``) a group; the first one starts the watchdog."""
    global _watchdog
    try:
        if _watchdog is None or _watchdog.poll() is not None:
            if line.startswith("-"):
                return
            _watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # outside every group it may have to kill
            )
        _watchdog.stdin.write(line + "\n")
        _watchdog.stdin.flush()
    except OSError:
        pass  # no watchdog: the parent-death signal still reaches the processes started


def start(args: Sequence[str | os.PathLike], **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **popen_kwargs)`` in a new process group that dies with us.

    Whoever calls this calls :func:`stop` (or uses :func:`started`).
    """
    proc = subprocess.Popen(
        args, start_new_session=True, preexec_fn=_dies_with(os.getpid()), **popen_kwargs
    )
    with _lock:
        _running[proc.pid] = proc
        _tell_watchdog(f"+{proc.pid}")
    return proc


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name: state, ppid, pgrp, ..."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is dead, waiting to be reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _members(pgid: int) -> list[int]:
    """The running processes of process group ``pgid``."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _gone(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait until ``proc``'s group has no running process, or ``deadline``; whether it has."""
    while True:
        proc.poll()  # reap the leader, or it stays a zombie
        if not _members(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """End ``proc`` (from :func:`start`) and its group: SIGTERM, ``timeout_s``, SIGKILL.

    A group that has exited already is not an error.
    """
    _signal_group(proc.pid, signal.SIGTERM)
    if not _gone(proc, time.monotonic() + timeout_s):
        _signal_group(proc.pid, signal.SIGKILL)
        _gone(proc, time.monotonic() + 10)
    proc.wait()
    with _lock:
        if _running.pop(proc.pid, None) is not None:
            _tell_watchdog(f"-{proc.pid}")


@contextmanager
def started(
    args: Sequence[str | os.PathLike], *, stop_timeout_s: float = 10.0, **popen_kwargs: Any
) -> Iterator[subprocess.Popen]:
    """:func:`start` for the length of the block; :func:`stop` when it ends, however it ends."""
    proc = start(args, **popen_kwargs)
    try:
        yield proc
    finally:
        stop(proc, timeout_s=stop_timeout_s)


def kill_leftovers() -> list[str]:
    """SIGKILL every group started here and not stopped that still runs; what they were."""
    with _lock:
        leftovers = list(_running.values())
    killed = []
    for proc in leftovers:
        members = _members(proc.pid)
        if members:
            command = proc.args if isinstance(proc.args, str) else shlex.join(map(str, proc.args))
            killed.append(f"pid {proc.pid} ({len(members)} running in its group): {command}")
            _signal_group(proc.pid, signal.SIGKILL)
            _gone(proc, time.monotonic() + 10)
        proc.wait()
        with _lock:
            _running.pop(proc.pid, None)
            _tell_watchdog(f"-{proc.pid}")
    return killed
