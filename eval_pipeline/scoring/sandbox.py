"""Run Python programs, and tests against model-written code, in isolated, limited processes.

Model-written code is untrusted. Two isolation levels exist (``ISOLATIONS``):

- ``bwrap`` (the default): every program runs under bubblewrap in fresh user, PID, mount,
  network, IPC, UTS and cgroup namespaces, as an unprivileged user (65534) with no
  capabilities, with a read-only view of ``/usr`` and the Python installation, a private
  ``/proc`` and ``/dev``, an empty ``/tmp`` holding only its own working directory, an empty
  environment and no network at all (loopback included). The host's processes, ``/etc``,
  ``/root`` and the rest of the filesystem do not exist for it, and everything it starts
  dies with the namespace when the run ends.
- ``process``: the weaker layers alone (below), for ``run_sandboxed`` with *trusted*
  programs only. ``run_tests`` refuses it (:data:`PROCESS_REFUSED`): a program that
  switches off the in-process guard (pure Python can) runs with the scorer's own user and
  view of the machine, so its verdict cannot be defended and must never become a score.

In both, these layers apply, outermost first:

1. **Separate process.** ``sys.executable -s -B -c <prelude>`` in its own session
   (``start_new_session``); ``sys.path`` never holds the working directory for trusted code.
2. **Throwaway working directory** (``tempfile.mkdtemp``) holding the program and
   ``extra_files``; ``HOME`` and ``TMPDIR`` point into it; it is removed afterwards.
3. **Minimal environment**, built from scratch: nothing comes from ``os.environ``.
4. **Resource limits**, set by the prelude before any program code runs: ``RLIMIT_AS``,
   ``RLIMIT_CPU``, ``RLIMIT_FSIZE`` (stdout and stderr included), ``RLIMIT_NPROC`` (not
   enforced by the kernel for root), ``RLIMIT_CORE=0``; in ``process`` mode also
   ``PR_SET_PDEATHSIG`` (bubblewrap's ``--die-with-parent`` does this under ``bwrap``).
   Run as root with a pids cgroup controller (v1, or v2 with ``pids`` enabled), each run
   also gets its own cgroup whose ``pids.max`` caps its tasks, since root ignores
   ``RLIMIT_NPROC``; with a memory controller, a cgroup capping the memory of all its
   processes together at ``memory_mb`` (swap included), since ``RLIMIT_AS`` caps each alone.
5. **Wall-clock timeout and cleanup**: the process group and every other member of the
   session found in ``/proc`` are SIGKILLed, and so is every task left in the run's cgroup;
   under ``bwrap`` the PID namespace ends too, which takes every process in it, whatever
   session it moved to.
6. **In-process guard** (``guard=True``): a PEP 578 audit hook refusing file access outside
   the working directory and the Python installation, processes, signals, network, ctypes,
   limit changes, and the usual ways to reach the guard itself (``gc`` object walks, frames
   of tracebacks and generators, tracing). Code set on defeating it
   can (it shares the interpreter); it is a second layer, not the boundary.

``run_tests`` adds a verdict the program cannot forge: the tests run in a supervisor
process that never executes model code. It forks the solution process first, before it
reads the tests (from stdin, so they are never in the solution's files or memory), calls
the entry point over a pipe with plain values (``None``, ``bool``, ``int``, ``float``,
``str``, ``bytes``, ``complex``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``,
exact types only), and writes its verdict to a file descriptor the solution process closes
before any model code runs. The supervisor makes itself non-dumpable, so the solution
cannot read or write its memory or descriptors through ``/proc`` or ``ptrace`` (under
``bwrap``, where both run without capabilities). See docs/sandbox.md for what is and is not
defended.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from eval_pipeline.core.types import Missing

logger = logging.getLogger(__name__)

PASSED = "passed"
FAILED = "failed"
TIMEOUT = "timeout"
MEMORY = "memory"
FILE_LIMIT = "file_limit"
BLOCKED = "blocked"
KILLED = "killed"
ERROR = "error"
STATUSES = (PASSED, FAILED, TIMEOUT, MEMORY, FILE_LIMIT, BLOCKED, KILLED, ERROR)

BWRAP = "bwrap"
PROCESS = "process"
ISOLATIONS = (BWRAP, PROCESS)
# The isolations a verdict on model-written code may come from (run_tests, the scorer).
SCORING_ISOLATIONS = (BWRAP,)
PROCESS_REFUSED = (
    "isolation 'process' cannot score model-written code: pure Python can switch off the "
    "in-process guard there, then forge a passing verdict and reach the network and the "
    "scorer's files, so no score from it may feed a gate or a leaderboard; it was removed "
    "(docs/sandbox.md). Install bubblewrap (bash scripts/ensure-bwrap.sh) and remove the "
    "scorer parameter 'isolation: process'"
)

PROGRAM_NAME = "main.py"
TAIL_BYTES = 4096
# The uid and gid a program has inside bubblewrap's user namespace (nobody).
SANDBOX_UID = 65534

# Nothing from os.environ: a minimal environment is the only sure way to keep secrets out.
# TMPDIR keeps tempfile inside the sandbox (the guard refuses /tmp); the thread counts stop
# numerical libraries from reserving per-core buffers that would not fit under RLIMIT_AS.
_BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_BLOCKED_ERROR = re.compile(r"(?:sandbox\.)?Sandbox(?:Violation|BlockedImport)\b")
_MEMORY_ERROR = re.compile(r"[\w.]*MemoryError\b")  # numpy raises a subclass, _ArrayMemoryError
_VERDICT_BYTES = 64 * 1024


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be provided on this machine (bubblewrap is missing)."""


class IsolationRefused(ValueError):
    """An isolation that cannot defend a verdict was asked to judge model-written code."""


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed run.

    Attributes:
        status: One of ``STATUSES``: ``passed`` (exit code 0, or for ``run_tests`` the
            supervisor's verdict), ``failed`` (non-zero exit or a failed test), ``timeout``
            (wall-clock or CPU limit), ``memory`` (memory limit), ``file_limit`` (a file or
            the output grew past ``max_file_bytes``), ``blocked`` (the guard refused an
            operation), ``killed`` (another signal) or ``error`` (the sandbox or the
            problem's tests themselves failed).
        returncode: The exit code, negative for a signal; None if the program never started.
        stdout: The last ``TAIL_BYTES`` of standard output.
        stderr: The last ``TAIL_BYTES`` of standard error.
        duration_s: Wall-clock seconds from start to cleanup.
        detail: A one-line human summary, e.g. ``timeout after 10s`` or
            ``failed: AssertionError``.
        isolation: The isolation the program ran under, one of ``ISOLATIONS``.
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str
    isolation: str = PROCESS

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None
    )


def check_isolation(isolation: str) -> str | None:
    """Why ``isolation`` cannot be used here (unknown, or bubblewrap missing), else None."""
    problem = isolation_problem(isolation)
    return None if problem is None else f"{problem.what}; fix: {problem.fix}"


def isolation_problem(isolation: str) -> Missing | None:
    """What ``isolation`` lacks on this machine and what fixes it, or None when it works.

    Cheap enough for a preflight: bubblewrap is looked up, then run once on ``/bin/true``
    (the outcome is kept for the process).
    """
    if isolation == PROCESS:
        what, _, fix = PROCESS_REFUSED.partition(". Install")
        return Missing(what, "install" + fix)
    if isolation not in SCORING_ISOLATIONS:
        return Missing(
            f"unknown isolation {isolation!r}",
            f"set the code_execution scorer parameter isolation to {BWRAP} (or leave it out)",
        )
    return bwrap_problem()


def bwrap_problem() -> Missing | None:
    """Why bubblewrap cannot run here (missing, or no namespaces), or None when it works."""
    bwrap = bwrap_path()
    if bwrap is None:
        return Missing(
            "bubblewrap (bwrap) is not installed, so model-written code cannot be isolated",
            "bash scripts/ensure-bwrap.sh (Debian: apt-get install bubblewrap)",
        )
    broken = _bwrap_failure(bwrap)
    if broken:
        return Missing(
            f"bubblewrap ({bwrap}) cannot create its namespaces here ({broken})",
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) "
            "or run where bubblewrap works; code is never scored without it",
        )
    return None


@functools.cache
def _bwrap_failure(bwrap: str) -> str | None:
    """Why bwrap cannot run a trivial sandbox here (no user namespaces, say), or None."""
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
        command = [*_bwrap_command(workdir, {}, False, bwrap), "--", "/bin/true"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.decode(errors="replace").strip()[-300:] or f"exit {done.returncode}"


def run_sandboxed(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    cpu_s: int | None = None,
    max_file_bytes: int = 1_000_000,
    max_processes: int = 64,
    extra_files: dict[str, str] | None = None,
    guard: bool = True,
    isolation: str = BWRAP,
) -> SandboxResult:
    """Run ``program`` (Python source) in a separate, limited process and clean up after it.

    Its exit status decides ``passed``: fine for trusted programs, but model-written code can
    exit 0 whenever it likes. Score model code with ``run_tests``.

    Args:
        program: The Python source to run as ``__main__``.
        timeout_s: Wall-clock limit; every process of the run is killed when it passes.
        memory_mb: Memory limit in MiB (default 512): ``RLIMIT_AS`` of each process and,
            run as root with a memory cgroup, of all the run's processes together (a kill
            at that cap is reported as ``memory``, ``... for all its processes``).
        cpu_s: CPU-time limit in seconds; defaults to the timeout rounded up, plus one.
        max_file_bytes: Largest file the program may write (``RLIMIT_FSIZE``), stdout and
            stderr included.
        max_processes: Processes and threads the program may add (``RLIMIT_NPROC``, not
            enforced for root; the guard, the namespace and the final kill contain it there).
        extra_files: Further files for the working directory, relative path to text.
        guard: Install the in-process guard. Turn it off only to test the other layers.
        isolation: ``bwrap`` (namespaces, the default) or ``process`` (trusted programs
            only: see the module text).

    Returns:
        The status, exit code, output tails, duration, a one-line summary and the isolation.

    Raises:
        ValueError: On a non-positive limit, an unknown isolation or an ``extra_files`` path
            that would leave the working directory or replace the program.
        SandboxUnavailable: When ``isolation`` is ``bwrap`` and bubblewrap is not installed.
    """
    files = _checked_files(extra_files or {})
    files[PROGRAM_NAME] = program
    return _run(
        "program", files, None, None, timeout_s, memory_mb, cpu_s, max_file_bytes,
        max_processes, guard, isolation,
    )  # fmt: skip


def run_tests(
    solution: str,
    entry_point: str,
    tests: str,
    *,
    helpers: str = "",
    check: str = "check",
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    cpu_s: int | None = None,
    max_file_bytes: int = 1_000_000,
    max_processes: int = 64,
    guard: bool = True,
    isolation: str = BWRAP,
) -> SandboxResult:
    """Run ``tests`` against ``entry_point`` of ``solution`` with a verdict it cannot forge.

    ``solution`` (model-written) runs in one process as ``__main__``; ``helpers`` and then
    ``tests`` (trusted: the problem's) run in a fresh namespace of a supervisor process that
    holds the verdict, with ``entry_point`` bound to a proxy that calls the solution's function
    over a pipe, and finally call ``check(entry_point)``. Arguments and return values cross
    as plain values of exact built-in types, so a returned object cannot rig a comparison,
    and nothing the solution patches (``builtins``, ``abs``, ...) reaches the tests.

    Args:
        solution: Python source defining ``entry_point``.
        entry_point: The name of the function under test.
        tests: Python source defining the ``check`` function.
        helpers: Trusted source run before ``tests`` in their namespace (e.g. the problem's
            prompt, whose helper functions tests may use); on a syntax error only the part
            before ``def <entry_point>`` runs.
        check: The name of the function in ``tests`` that takes the candidate.
        timeout_s: Wall-clock limit for the whole run.
        memory_mb: Memory limit in MiB (default 512): ``RLIMIT_AS`` of each process and,
            run as root with a memory cgroup, of all the run's processes together (a kill
            at that cap is reported as ``memory``, ``... for all its processes``).
        cpu_s: CPU-time limit per process; defaults to the timeout rounded up, plus one.
        max_file_bytes: Largest file (and output) a process may write.
        max_processes: As for ``run_sandboxed``.
        guard: Install the in-process guard in the solution's process.
        isolation: ``bwrap``, the only isolation whose verdict model code cannot forge.

    Returns:
        ``passed`` only when the supervisor saw ``check`` return; otherwise the reason.

    Raises:
        IsolationRefused: ``isolation`` is ``process`` (see :data:`PROCESS_REFUSED`).
        ValueError: On a non-positive limit or an unknown isolation.
        SandboxUnavailable: When ``isolation`` is ``bwrap`` and bubblewrap is not installed.
    """
    problem = {"helpers": helpers, "tests": tests, "entry_point": entry_point, "check": check}
    return _run(
        "tests", {PROGRAM_NAME: solution}, json.dumps(problem).encode(), entry_point,
        timeout_s, memory_mb, cpu_s, max_file_bytes, max_processes, guard, isolation,
    )  # fmt: skip


def _run(
    mode: str,
    files: dict[str, str],
    stdin_data: bytes | None,
    entry_point: str | None,
    timeout_s: float,
    memory_mb: int,
    cpu_s: int | None,
    max_file_bytes: int,
    max_processes: int,
    guard: bool,
    isolation: str,
) -> SandboxResult:
    if timeout_s <= 0 or memory_mb <= 0 or max_file_bytes <= 0 or max_processes <= 0:
        raise ValueError("sandbox limits must be positive")
    if cpu_s is None:
        cpu_s = math.ceil(timeout_s) + 1
    if cpu_s <= 0:
        raise ValueError("cpu_s must be positive")
    if isolation not in ISOLATIONS:
        raise ValueError(check_isolation(isolation))
    if mode == "tests" and isolation not in SCORING_ISOLATIONS:
        raise IsolationRefused(PROCESS_REFUSED)
    if isolation == BWRAP:
        missing = bwrap_problem()
        if missing:
            raise SandboxUnavailable(f"{missing.what}; fix: {missing.fix}")

    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="sandbox-"))
    try:
        for rel, text in files.items():
            target = os.path.join(workdir, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
        # Output goes to unlinked files, not pipes: nothing can block on a full pipe, a
        # surviving grandchild holding the write end cannot stall us, and RLIMIT_FSIZE bounds
        # it. The verdict file is only handed to the supervisor of run_tests.
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            tempfile.TemporaryFile() as verdict,
            tempfile.TemporaryFile() as stdin,
        ):
            if stdin_data is not None:
                stdin.write(stdin_data)
                stdin.seek(0)
            verdict_fd = verdict.fileno() if mode == "tests" else -1
            # Plain integers on the command line: importing json costs ~10 ms a run.
            bwrapped = isolation == BWRAP
            limits = [memory_mb * 1024 * 1024, int(cpu_s), int(max_file_bytes)]
            nproc = _user_tasks() + max_processes
            # Under bwrap, --die-with-parent stands in for the prelude's parent-death signal.
            parent = 0 if bwrapped else os.getpid()
            config = [mode, workdir, *map(str, (*limits, nproc, parent, int(guard), verdict_fd))]
            python = _python_executable() if bwrapped else sys.executable
            command = [python, "-s", "-B", "-c", _PRELUDE, *config]
            env = {**_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
            info_r = info_w = -1
            if bwrapped:
                # bwrap writes the host pid of the namespace's first process here.
                info_r, info_w = os.pipe()
                sandbox = _bwrap_command(workdir, env, mode == "tests")
                command = [*sandbox, "--info-fd", str(info_w), "--", *command]
            # A pids cgroup caps the run's tasks where RLIMIT_NPROC does not hold (root). The
            # shell joins it before it becomes bwrap or Python, so nothing escapes the count.
            # The run's own tasks: bwrap outside and its reaper (in program mode) inside,
            # then the program, or the supervisor and the solution.
            own = (1 if bwrapped else 0) + (2 if mode == "tests" else 1)
            own += 1 if bwrapped and mode != "tests" else 0
            cgroup = _new_pids_cgroup(own + max_processes)
            # A memory cgroup caps the run's processes together (RLIMIT_AS caps each alone).
            memory_group = _new_memory_cgroup(memory_mb * 1024 * 1024, cgroup)
            groups = [g for g in dict.fromkeys((cgroup, memory_group)) if g]
            if groups:
                # The shell joins every group before it becomes bwrap or Python.
                paths = [os.path.join(g, "cgroup.procs") for g in groups]
                joins = ['echo $$ > "$0"'] + ['echo $$ > "$1" && shift'] * (len(paths) - 1)
                script = " && ".join([*joins, 'exec "$@"'])
                command = ["/bin/sh", "-c", script, *paths, *command]
            try:
                # No preexec_fn: it is unsafe when other threads run (the scorer's pool does),
                # so the limits are set by the prelude inside the child instead.
                proc = subprocess.Popen(
                    command,
                    cwd=workdir,
                    env=env,
                    stdin=stdin if stdin_data is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=tuple(fd for fd in (verdict_fd, info_w) if fd >= 0),
                )
            except OSError as exc:
                for group in groups:
                    _remove_cgroup(group)
                detail = f"error: cannot start: {exc}"
                return SandboxResult(
                    ERROR, None, "", "", time.monotonic() - start, detail, isolation
                )
            finally:
                if info_w >= 0:
                    os.close(info_w)
            namespace = None
            try:
                if info_r >= 0:
                    namespace = _namespace_pidfd(info_r, start + timeout_s)
                finished = _wait_for_exit(proc.pid, start + timeout_s)
            finally:
                # The pid is the session and group id; it stays a zombie (and so is not
                # reused) until proc.wait() below, so nothing outside can be hit.
                _kill_session(proc.pid)
                returncode = proc.wait()
                if info_r >= 0:
                    os.close(info_r)
                # bwrap's own exit does not wait for its namespace: end it and wait until it
                # is gone, so that nothing of the run outlives this call.
                _end_namespace(namespace)
                memory_hit = memory_group is not None and _memory_cap_hit(memory_group)
                for group in groups:
                    _remove_cgroup(group)
            if bwrapped and finished and 128 < returncode < 128 + 65:
                # bwrap reports a program killed by a signal as 128 + the signal.
                returncode = 128 - returncode
            stdout, stderr = _tail(out), _tail(err)
            verdict.seek(0)
            verdict_text = verdict.read(_VERDICT_BYTES).decode("utf-8", errors="replace")
    finally:
        _remove_tree(workdir)

    bounds = _Limits(timeout_s, cpu_s, memory_mb, max_file_bytes)
    status, detail = _classify(mode, finished, returncode, stderr, verdict_text, bounds, memory_hit)
    duration = time.monotonic() - start
    return SandboxResult(status, returncode, stdout, stderr, duration, detail, isolation)


def _python_executable() -> str:
    # The venv's interpreter by its real directory (bound read-only inside the sandbox), so
    # that Python still finds pyvenv.cfg and the venv's site-packages.
    here = os.path.dirname(sys.executable)
    return os.path.join(os.path.realpath(here), os.path.basename(sys.executable))


@functools.cache
def _python_roots() -> list[str]:
    """The directories the interpreter needs, outermost only."""
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    roots.update(p for p in sysconfig.get_paths().values() if p)
    real = sorted({os.path.realpath(r) for r in roots if r and os.path.isdir(r)})
    outer: list[str] = []
    for root in real:
        if not any(root == o or root.startswith(o + os.sep) for o in outer):
            outer.append(root)
    return [r for r in outer if r != "/" and r != "/usr" and not r.startswith("/usr/")]


def _bwrap_command(
    workdir: str, env: dict[str, str], as_pid_1: bool, bwrap: str | None = None
) -> list[str]:
    """The bubblewrap command line (without the program) for one run in ``workdir``.

    With ``as_pid_1`` the program is the namespace's first process instead of bwrap's
    reaper: the reaper would hold copies of every inherited descriptor (the verdict's, the
    tests') where any process of the namespace could open them through ``/proc/1/fd``.
    """
    bwrap = bwrap or bwrap_path()
    assert bwrap is not None
    args = [
        bwrap,
        "--unshare-all",  # user, IPC, PID, network, UTS and cgroup namespaces
        "--unshare-user",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--cap-drop", "ALL",
        "--die-with-parent",  # a killed scorer takes the whole namespace with it
        "--new-session",  # no TIOCSTI into the caller's terminal
        "--hostname", "sandbox",
        *(["--as-pid-1"] if as_pid_1 else []),
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    # The private /tmp first: a Python installation or working directory that lives under
    # /tmp (a virtual environment in a checkout there) is bound on top of it, not hidden.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    args += ["--bind", workdir, workdir, "--chdir", workdir, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def _namespace_pidfd(info: int, deadline: float) -> int | None:
    """A pidfd for the namespace's first process, from bwrap's ``--info-fd`` JSON."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([info], [], [], remaining)[0]:
            return None
        chunk = os.read(info, 4096)
        data += chunk
        try:
            pid = int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            if not chunk:
                return None  # bwrap failed before starting the sandbox
            continue
        try:
            return os.pidfd_open(pid)
        except OSError:
            return None  # it has already ended, and with it the namespace


def _end_namespace(pidfd: int | None) -> None:
    """SIGKILL the namespace's first process and wait until it, and so the namespace, ends."""
    if pidfd is None:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # Readable once it has exited; the kernel kills and reaps every other process of a PID
    # namespace before its first process finishes exiting.
    if not select.select([pidfd], [], [], 5)[0]:
        logger.warning("sandbox namespace did not end within 5 s of SIGKILL")
    os.close(pidfd)


_CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


@functools.cache
def _pids_cgroup_root() -> str | None:
    """A cgroup directory (v1 pids hierarchy, or v2 with pids) we may create groups in."""
    if os.getuid() != 0:
        return None  # delegated cgroups are not worth the guesswork: RLIMIT_NPROC holds
    for root in _CGROUP_ROOTS:
        controllers = os.path.join(root, "cgroup.subtree_control")
        if root.endswith("/pids"):
            usable = os.path.exists(os.path.join(root, "tasks"))
        else:
            try:
                with open(controllers, encoding="ascii") as handle:
                    usable = "pids" in handle.read().split()
            except OSError:
                usable = False
        if usable and os.access(root, os.W_OK):
            _sweep_cgroups(root)
            return root
    return None


def _sweep_cgroups(root: str) -> None:
    """Remove the cgroups of scorers that died mid-run (their pid is in the name)."""
    for entry in os.scandir(root):
        parts = entry.name.split("-")
        if entry.name.startswith("eval-sandbox-") and len(parts) == 4 and parts[2].isdigit():
            if not os.path.exists(f"/proc/{parts[2]}"):
                _remove_cgroup(entry.path)


def _new_pids_cgroup(limit: int) -> str | None:
    """A fresh cgroup allowing ``limit`` tasks, or None where none can be made."""
    root = _pids_cgroup_root()
    if root is None:
        return None
    path = os.path.join(root, f"eval-sandbox-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w", encoding="ascii") as handle:
            handle.write(str(limit))
    except OSError as exc:
        logger.debug("no pids cgroup for the sandbox: %s", exc)
        try:
            os.rmdir(path)
        except OSError:
            pass
        return None
    return path


_MEMORY_ROOTS = ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")


@functools.cache
def _memory_cgroup_root() -> str | None:
    """A cgroup directory (v1 memory hierarchy, or v2 with memory) we may create groups in."""
    if os.getuid() != 0:
        return None  # as for pids: no delegated cgroups; RLIMIT_AS still caps each process
    for root in _MEMORY_ROOTS:
        if root.endswith("/memory"):
            usable = os.path.exists(os.path.join(root, "memory.limit_in_bytes"))
        else:
            try:
                with open(os.path.join(root, "cgroup.subtree_control"), encoding="ascii") as f:
                    usable = "memory" in f.read().split()
            except OSError:
                usable = False
        if usable and os.access(root, os.W_OK):
            _sweep_cgroups(root)
            return root
    return None


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _new_memory_cgroup(limit_bytes: int, pids_group: str | None) -> str | None:
    """A cgroup capping the memory of every process in it at ``limit_bytes``, or None.

    On cgroup v2 a process is in one group only, so the cap goes on the run's pids group
    when that is in the same hierarchy. Swap is capped at zero where the kernel lets us,
    so the cap cannot be dodged by swapping.
    """
    root = _memory_cgroup_root()
    if root is None:
        return None
    v1 = root.endswith("/memory")
    shared = pids_group is not None and not v1 and os.path.dirname(pids_group) == root
    path = pids_group if shared else os.path.join(
        root, f"eval-sandbox-{os.getpid()}-{os.urandom(6).hex()}"
    )  # fmt: skip
    assert path is not None
    try:
        if not shared:
            os.mkdir(path)
        if v1:
            _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
            swap = os.path.join(path, "memory.memsw.limit_in_bytes")
            if os.path.exists(swap):
                _write(swap, str(limit_bytes))
        else:
            _write(os.path.join(path, "memory.max"), str(limit_bytes))
            if os.path.exists(os.path.join(path, "memory.swap.max")):
                _write(os.path.join(path, "memory.swap.max"), "0")
    except OSError as exc:
        logger.debug("no memory cgroup for the sandbox: %s", exc)
        if not shared:
            try:
                os.rmdir(path)
            except OSError:
                pass
        return None
    return path


def _memory_cap_hit(path: str) -> bool:
    """Whether the kernel killed a process of the group at its memory cap."""
    for name in ("memory.events", "memory.oom_control"):
        try:
            with open(os.path.join(path, name), encoding="ascii") as handle:
                fields = dict(line.split(None, 1) for line in handle if " " in line)
        except OSError:
            continue
        return int(fields.get("oom_kill", "0")) > 0 or int(fields.get("under_oom", "0")) > 0
    return False


def _remove_cgroup(path: str) -> None:
    """SIGKILL whatever is left in the run's cgroup (whatever session it moved to), remove it."""
    for _ in range(200):
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as handle:
                pids = [int(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)  # killed tasks take a moment to leave
    logger.warning("could not remove sandbox cgroup %s", path)


def _user_tasks() -> int:
    """Tasks (threads) of our real uid on the machine: RLIMIT_NPROC counts all of them."""
    if os.getuid() == 0:
        return 0  # the kernel does not enforce RLIMIT_NPROC for root
    uid, count = str(os.getuid()), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if status.get("Uid", "").split()[:1] == [uid]:
            count += int(status.get("Threads", "1").strip() or 1)
    return count


def _checked_files(extra_files: dict[str, str]) -> dict[str, str]:
    checked = {}
    for name, text in extra_files.items():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"extra file {name!r} must be a relative path inside the sandbox")
        if path.as_posix() == PROGRAM_NAME:
            raise ValueError(f"extra file {name!r} would replace the program")
        checked[path.as_posix()] = text
    return checked


def _wait_for_exit(pid: int, deadline: float) -> bool:
    """Wait until ``pid`` exits or ``deadline`` passes, without reaping it; True if it exited."""
    delay = 0.001
    while True:
        # WNOWAIT leaves the zombie in place so its pid, the group id, cannot be reused
        # before the group is killed.
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.005)


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session or process group is ``sid``, from ``/proc``."""
    members = []
    own = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # the process ended while we looked
        # The command name may hold spaces and parentheses; the fields follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 4 or fields[0] in (b"Z", b"X"):
            continue
        pid = int(entry.name)
        if pid != own and sid in (int(fields[2]), int(fields[3])):
            members.append(pid)
    return members


def _kill_session(sid: int) -> None:
    """SIGKILL the process group ``sid`` and any process left in session ``sid``."""
    for _ in range(200):
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # A process may have moved to another group of the session; the session id stays.
        members = _session_members(sid)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    logger.warning("sandbox session %d still has processes after SIGKILL", sid)


def _tail(handle: IO[bytes], limit: int = TAIL_BYTES) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - limit))
    text = handle.read().decode("utf-8", errors="replace")
    return f"[... {size - limit} bytes cut ...]\n{text}" if size > limit else text


def _remove_tree(path: str) -> None:
    def make_writable_and_retry(
        func: Callable[[str], object], failed_path: str, *_: object
    ) -> None:
        # A program may have removed write permission from its own directories.
        os.chmod(os.path.dirname(failed_path), 0o700)
        func(failed_path)

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable_and_retry)  # type: ignore[call-arg]
        else:
            shutil.rmtree(path, onerror=make_writable_and_retry)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        logger.warning("could not remove sandbox directory %s", path)


def _last_lines(text: str, count: int = 3, limit: int = 300) -> str:
    # Skip the ^^^^ markers under traceback lines: they say nothing on one line.
    lines = [line.strip() for line in text.splitlines() if line.strip(" \t^~")]
    summary = " | ".join(lines[-count:])
    return summary if len(summary) <= limit else "..." + summary[-limit:]


@dataclass(frozen=True)
class _Limits:
    """The limits of one run, as the classifier names them in its details."""

    timeout_s: float
    cpu_s: int
    memory_mb: int
    max_file_bytes: int


def _classify(
    mode: str,
    finished: bool,
    returncode: int,
    stderr: str,
    verdict_text: str,
    limits: _Limits,
    memory_hit: bool = False,
) -> tuple[str, str]:
    """The status and one-line detail of a run: the one classifier of both modes.

    In ``tests`` mode ``passed`` comes only from the supervisor's verdict; without one
    (the supervisor died) the supervisor's own end is classified, never as passed. Either
    way the end is then read the same way: a signal names the limit hit, else the last
    line of the error names the exception. ``memory_hit`` says the run's memory cgroup
    killed a process at its cap.
    """
    if not finished:
        return TIMEOUT, f"timeout after {limits.timeout_s:g}s"
    memory = f"memory limit ({limits.memory_mb} MB)"
    line = ""
    failed_line = ""
    if mode == "tests":
        try:
            verdict = json.loads(verdict_text) if verdict_text else None
        except ValueError:
            verdict = None
        if not isinstance(verdict, dict):
            if returncode == 0:
                return ERROR, "error: the test supervisor exited without a verdict"
        elif verdict.get("status") == PASSED and returncode == 0:
            return PASSED, PASSED
        elif verdict.get("status") == ERROR:
            return ERROR, f"error: {verdict.get('error', '')}"[:400]
        else:
            # The solution process's end, as the supervisor saw it.
            sig = verdict.get("signal")
            returncode = -sig if isinstance(sig, int) and sig > 0 else 1
            error = str(verdict.get("error") or "the tests failed")
            line = failed_line = error if len(error) <= 300 else error[:300] + "..."
    elif returncode == 0:
        return PASSED, PASSED
    if not line:
        line = _last_lines(stderr, count=1)
        failed_line = _last_lines(stderr) or f"exit code {returncode}"
    if returncode == -signal.SIGXCPU:
        return TIMEOUT, f"timeout: CPU limit of {limits.cpu_s}s"
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE surfaces as OSError(EFBIG).
    if returncode == -signal.SIGXFSZ or f"[Errno {errno.EFBIG}]" in line:
        return FILE_LIMIT, f"file_limit: a file or the output passed {limits.max_file_bytes} bytes"
    if memory_hit:
        return MEMORY, (
            f"memory limit ({limits.memory_mb} MB for all its processes): the kernel killed "
            "a process at the cap"
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return KILLED, f"killed by {name}"
    # The last error line names the exception that ended the program.
    if _BLOCKED_ERROR.match(line):
        return BLOCKED, f"blocked: {line}"
    if _MEMORY_ERROR.match(line):
        return MEMORY, f"{memory}: {line}"
    return FAILED, f"failed: {failed_line}"


# The child's prelude, passed with -c (so nothing is imported from the working directory).
_PRELUDE = (Path(__file__).parent / "_sandbox_child.py").read_text(encoding="utf-8")
