"""eval_pipeline_tests.processes: what a test starts dies with the test, and with pytest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from eval_pipeline_tests import processes
from eval_pipeline_tests.projects import REPO

# Starts a child of its own (in its process group), prints the child's pid once the child
# is ready, and sleeps. With "ignore" as its argument, both ignore SIGTERM.
SPAWNER = """
import signal, subprocess, sys, time
ignore = sys.argv[1:] == ["ignore"]
if ignore:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
code = "import signal, sys, time\\n"
if ignore:
    code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
code += "print('ready', flush=True)\\ntime.sleep(600)\\n"
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(600)
"""

# Stands in for pytest: starts SPAWNER through the helper and prints the pids of the
# process it started, of that process's child, and of the watchdog; then sleeps.
STAND_IN = f"""
import subprocess, sys, time
from eval_pipeline_tests import processes
proc = processes.start([sys.executable, "-c", {SPAWNER!r}], stdout=subprocess.PIPE)
print(proc.pid, int(proc.stdout.readline()), processes._watchdog.pid, flush=True)
time.sleep(600)
"""


def _wait_until_dead(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """Poll until none of ``pids`` runs or ``timeout_s`` passes; the ones still running."""
    deadline = time.monotonic() + timeout_s
    while (running := [p for p in pids if processes.alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return running


def test_a_block_that_raises_leaves_neither_the_process_nor_its_child_running():
    pids: list[int] = []
    with (
        pytest.raises(RuntimeError, match="a failing assertion"),
        processes.started(
            [sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True
        ) as proc,
    ):
        pids = [proc.pid, int(proc.stdout.readline())]
        assert all(processes.alive(p) for p in pids)
        raise RuntimeError("a failing assertion")
    # stop() returns once the whole group is gone: nothing to wait for here.
    assert [p for p in pids if processes.alive(p)] == []
    # Ended by a signal: SIGTERM first; SIGKILL where the group outlived the grace period on
    # a loaded machine (seen once in CI). test_a_group_that_ignores_sigterm_... pins the order.
    assert proc.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert proc.pid not in processes._running


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period():
    grace_s = 0.3
    with processes.started(
        [sys.executable, "-c", SPAWNER, "ignore"],
        stdout=subprocess.PIPE,
        text=True,
        stop_timeout_s=grace_s,
    ) as proc:
        pids = [proc.pid, int(proc.stdout.readline())]
        start = time.monotonic()
    took = time.monotonic() - start
    assert [p for p in pids if processes.alive(p)] == []
    assert proc.returncode == -signal.SIGKILL
    assert grace_s <= took < grace_s + 5


def _stand_in():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return processes.started(
        [sys.executable, "-c", STAND_IN], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )


def test_a_process_started_dies_with_the_python_that_started_it():
    with _stand_in() as stand_in:
        started, _, watchdog = map(int, stand_in.stdout.readline().split())
        try:
            # Without the watchdog only the kernel's parent-death signal is left to end it.
            os.kill(watchdog, signal.SIGKILL)
            assert _wait_until_dead([watchdog]) == []
            assert processes.alive(started)
            stand_in.kill()
            assert _wait_until_dead([started]) == []
        finally:
            processes._signal_group(started, signal.SIGKILL)


def test_the_watchdog_ends_the_group_of_a_killed_python_children_included():
    with _stand_in() as stand_in:
        started, child, watchdog = map(int, stand_in.stdout.readline().split())
        try:
            stand_in.kill()
            # The child is not the stand-in's: only the watchdog's kill of the group ends it.
            assert _wait_until_dead([started, child, watchdog]) == []
        finally:
            processes._signal_group(started, signal.SIGKILL)


def test_the_session_kills_and_names_a_group_left_running(monkeypatch):
    monkeypatch.setattr(processes, "_running", {})  # only this test's group, not a fixture's
    proc = processes.start([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True)
    pids = [proc.pid, int(proc.stdout.readline())]
    [line] = processes.kill_leftovers()
    assert line.startswith(f"pid {proc.pid} (2 running in its group): ")
    assert [p for p in pids if processes.alive(p)] == []
    assert processes.kill_leftovers() == []
