"""Run a Python program in a separate, resource-limited, cleaned-up process.

This is defence in depth for evaluating model-written code: it stops the accidents that such
code commonly causes (endless loops, runaway memory, fork loops, stray files, killed or
orphaned processes, leaked credentials) from hurting the evaluation or the machine. It is NOT
a security boundary against a determined attacker: the program runs as the same user (root in
the test environment), on the same kernel, sees the same filesystem and network, and everything
done inside the Python interpreter can be undone by code that sets out to do so (through the
closures of the patched functions, a native extension, races on symlinks, ...). Run untrusted
code inside a container or a VM (gVisor, nsjail, Firecracker) as well.

The layers, outermost first:

1. **Separate process.** The program runs under ``sys.executable -s -B -c <prelude>`` with
   ``start_new_session=True``, so it leads its own session and process group. (Not ``-I``:
   that would also ignore ``PYTHONHASHSEED``, and the environment is built from scratch anyway.)
2. **Throwaway working directory.** A fresh ``tempfile.mkdtemp`` directory holds the program
   and ``extra_files``; ``HOME`` and ``TMPDIR`` point into it; it is removed afterwards.
3. **Minimal environment.** The child's environment is built from scratch (``PATH``, ``LANG``,
   ``HOME``, ``TMPDIR``, ``PYTHONDONTWRITEBYTECODE``, ``PYTHONHASHSEED=0`` and thread counts for
   numerical libraries); nothing is copied from ``os.environ``, so API keys never reach it.
4. **Resource limits**, set by the prelude in the child before any program code runs (not in
   ``preexec_fn``, which can deadlock when the parent runs threads): ``RLIMIT_AS`` (memory),
   ``RLIMIT_CPU``, ``RLIMIT_FSIZE`` (every file written, stdout and stderr included, since they
   are files), ``RLIMIT_NPROC`` (the user's current task count plus ``max_processes``, because
   the kernel counts all of the user's tasks; the kernel does not enforce it for root),
   ``RLIMIT_CORE=0``, and ``PR_SET_PDEATHSIG`` so the program dies with the process that
   started it (its working directory is then left behind).
5. **Wall-clock timeout and process cleanup.** The parent waits until the deadline; whether
   the program finished or not, it then SIGKILLs the process group and every other member of
   the session it finds in ``/proc``, so no children survive, even under root where
   ``RLIMIT_NPROC`` does not hold.
6. **In-process guard** (``guard=True``), installed by the prelude just before the program runs:
   a PEP 578 audit hook, which Python code cannot remove, refuses file opens for writing
   outside the working directory, reads outside the working directory and the Python
   installation (``/proc/<parent>/environ`` would otherwise leak the parent's secrets),
   deleting, renaming, linking, ``chmod``/``chown`` and ``mkdir`` outside the working
   directory, starting processes (``fork``, ``subprocess``, ``os.system``, ``exec``, ``spawn``),
   signalling other processes, changing resource limits, network access, ``ioctl`` and
   ``ctypes``. Functions that raise no audit event (``setsid``, ``setpgid``, ``set*id``,
   ``mknod``, ``mkfifo``, ``chroot``, ``pidfd_*``, ``_posixsubprocess.fork_exec``) are replaced
   by stubs that raise, and ``os.open`` with ``dir_fd`` is checked by a wrapper because its audit
   event does not carry the directory. A refused operation raises ``SandboxViolation`` (a
   ``PermissionError``), or ``SandboxBlockedImport`` (an ``ImportError``) for a blocked import.

Not contained: total disk use (``RLIMIT_FSIZE`` caps each file, not how many are written), CPU
and memory pressure on the rest of the machine while a program runs, directory listings and
metadata outside the working directory, and anything done from native code or by a program
that deliberately digs out the original functions; a process that leaves the session through
such means also escapes the final kill where ``RLIMIT_NPROC`` is not enforced.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

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

PROGRAM_NAME = "main.py"
TAIL_BYTES = 4096

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


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed run.

    Attributes:
        status: One of ``STATUSES``: ``passed`` (exit code 0), ``failed`` (non-zero exit),
            ``timeout`` (wall-clock or CPU limit), ``memory`` (memory limit), ``file_limit``
            (a file or the output grew past ``max_file_bytes``), ``blocked`` (the guard refused
            an operation), ``killed`` (another signal) or ``error`` (the sandbox itself failed).
        returncode: The exit code, negative for a signal; None if the program never started.
        stdout: The last ``TAIL_BYTES`` of standard output.
        stderr: The last ``TAIL_BYTES`` of standard error.
        duration_s: Wall-clock seconds from start to cleanup.
        detail: A one-line human summary, e.g. ``timeout after 10s`` or
            ``failed: AssertionError``.
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED


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
) -> SandboxResult:
    """Run ``program`` (Python source) in a separate, limited process and clean up after it.

    Args:
        program: The Python source to run as ``__main__``.
        timeout_s: Wall-clock limit; the whole process group is killed when it passes.
        memory_mb: Address-space limit (``RLIMIT_AS``) in MiB.
        cpu_s: CPU-time limit in seconds; defaults to the timeout rounded up, plus one.
        max_file_bytes: Largest file the program may write (``RLIMIT_FSIZE``), stdout and
            stderr included.
        max_processes: Processes and threads the program may add (``RLIMIT_NPROC``, not
            enforced for root; the guard and the process-group kill contain it there).
        extra_files: Further files for the working directory, relative path to text.
        guard: Install the in-process guard. Turn it off only to test the OS-level layers.

    Returns:
        The status, exit code, output tails, duration and a one-line summary.

    Raises:
        ValueError: On a non-positive limit or an ``extra_files`` path that would leave the
            working directory or replace the program.
    """
    if timeout_s <= 0 or memory_mb <= 0 or max_file_bytes <= 0 or max_processes <= 0:
        raise ValueError("sandbox limits must be positive")
    if cpu_s is None:
        cpu_s = math.ceil(timeout_s) + 1
    if cpu_s <= 0:
        raise ValueError("cpu_s must be positive")
    files = _checked_files(extra_files or {})

    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="sandbox-"))
    try:
        for rel, text in files.items():
            target = os.path.join(workdir, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
        program_path = os.path.join(workdir, PROGRAM_NAME)
        with open(program_path, "w", encoding="utf-8") as handle:
            handle.write(program)
        # Plain integers on the command line: importing json in the child costs ~10 ms a run.
        limits = [memory_mb * 1024 * 1024, int(cpu_s), int(max_file_bytes), int(max_processes)]
        config = [str(value) for value in (*limits, os.getpid(), int(guard))]
        command = [sys.executable, "-s", "-B", "-c", _PRELUDE, program_path, *config]
        env = {**_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
        # Output goes to unlinked files, not pipes: nothing can block on a full pipe, a
        # surviving grandchild holding the write end cannot stall us, and RLIMIT_FSIZE bounds it.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                # No preexec_fn: it is unsafe when other threads run (the scorer's pool does),
                # so the limits are set by the prelude inside the child instead.
                proc = subprocess.Popen(
                    command,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                return SandboxResult(
                    ERROR, None, "", "", time.monotonic() - start, f"error: cannot start: {exc}"
                )
            try:
                finished = _wait_for_exit(proc.pid, start + timeout_s)
            finally:
                # The program's pid is its session and group id; it stays a zombie (and so is
                # not reused) until proc.wait() below, so nothing outside can be hit.
                _kill_session(proc.pid)
                returncode = proc.wait()
            stdout, stderr = _tail(out), _tail(err)
    finally:
        _remove_tree(workdir)

    status, detail = _classify(
        finished, returncode, stderr, timeout_s, cpu_s, memory_mb, max_file_bytes
    )
    return SandboxResult(status, returncode, stdout, stderr, time.monotonic() - start, detail)


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
    def make_writable_and_retry(func, failed_path, *_):
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


def _classify(
    finished: bool,
    returncode: int,
    stderr: str,
    timeout_s: float,
    cpu_s: int,
    memory_mb: int,
    max_file_bytes: int,
) -> tuple[str, str]:
    if not finished:
        return TIMEOUT, f"timeout after {timeout_s:g}s"
    if returncode == 0:
        return PASSED, PASSED
    if returncode == -signal.SIGXCPU:
        return TIMEOUT, f"timeout: CPU limit of {cpu_s}s"
    last = _last_lines(stderr, count=1)
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE surfaces as OSError(EFBIG).
    if returncode == -signal.SIGXFSZ or f"[Errno {errno.EFBIG}]" in last:
        return FILE_LIMIT, f"file_limit: a file or the output passed {max_file_bytes} bytes"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return KILLED, f"killed by {name}"
    # The last stderr line names the exception that ended the program.
    if _BLOCKED_ERROR.match(last):
        return BLOCKED, f"blocked: {last}"
    if _MEMORY_ERROR.match(last):
        return MEMORY, f"memory limit ({memory_mb} MB): {last}"
    return FAILED, f"failed: {_last_lines(stderr) or f'exit code {returncode}'}"


# Runs inside the child before the program: limits, parent-death signal, then the guard.
# Its arguments are the program path, the limits, the parent pid and the guard flag; it runs
# the program as __main__.
_PRELUDE = r'''
def _sandbox_main():
    import builtins
    import os
    import resource
    import sys
    import types

    path = sys.argv[1]
    memory_bytes, cpu_s, file_bytes, max_processes, parent_pid, guard = map(int, sys.argv[2:8])
    workdir = os.path.realpath(os.getcwd())

    def limit(kind, soft, hard):
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))

    def user_tasks():
        # RLIMIT_NPROC counts every task (thread) of the real uid, not just ours.
        uid, count = str(os.getuid()), 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if status.get("Uid", "").split()[:1] == [uid]:
                count += int(status.get("Threads", "1").strip() or 1)
        return count

    limit(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    limit(resource.RLIMIT_FSIZE, file_bytes, file_bytes)
    limit(resource.RLIMIT_CORE, 0, 0)
    nproc = user_tasks() + max_processes
    limit(resource.RLIMIT_NPROC, nproc, nproc)

    try:
        import ctypes

        # PR_SET_PDEATHSIG (1): die with the process that started us, even if it is SIGKILLed.
        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
    except Exception:
        pass
    finally:
        # Forget ctypes so that the program has to import it again, which the guard refuses.
        for name in list(sys.modules):
            if name in ("ctypes", "_ctypes") or name.startswith("ctypes."):
                del sys.modules[name]
        ctypes = None
    if os.getppid() != parent_pid:
        os._exit(137)  # the parent died before the death signal was armed

    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    if guard:
        _install_guard(workdir)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [path]
    exec(code, main.__dict__)


def _install_guard(workdir):
    import os
    import posix
    import signal
    import sys

    import _posixsubprocess
    import _socket

    class SandboxViolation(PermissionError):
        """An operation the sandbox does not allow."""

    class SandboxBlockedImport(ImportError):
        """A module the sandbox does not allow (an ImportError, so optional imports degrade)."""

    for error in (SandboxViolation, SandboxBlockedImport):
        error.__module__, error.__qualname__ = "sandbox", error.__name__

    inside = workdir + os.sep
    devices = frozenset(("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"))
    # These resolve to the (unlinked) output files through /proc/self/fd.
    streams = frozenset(("/dev/stdin", "/dev/stdout", "/dev/stderr"))
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        import site

        roots.update(site.getsitepackages())
    except Exception:
        pass
    roots.add("/usr/share/zoneinfo")
    read_roots = tuple(os.path.realpath(root) + os.sep for root in roots if root)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    own_pid = os.getpid()
    blocked_modules = frozenset(("ctypes", "_ctypes", "cffi", "_cffi_backend"))

    def deny(message):
        raise SandboxViolation(message)

    def resolve(target, dir_fd=None):
        if isinstance(target, int):
            if target < 0:
                return None
            return os.path.realpath(os.readlink(f"/proc/self/fd/{target}"))
        name = os.fsdecode(target)
        if dir_fd is not None and dir_fd >= 0 and not os.path.isabs(name):
            base = os.readlink(f"/proc/self/fd/{dir_fd}")
        else:
            base = os.getcwd()
        return os.path.realpath(os.path.join(base, name))

    def check_write(target, dir_fd=None, action="write"):
        # An already open descriptor was checked when it was opened.
        if isinstance(target, int) or target in streams:
            return
        full = resolve(target, dir_fd)
        if full.startswith(inside) or full in devices:
            return
        deny(f"{action} outside the sandbox directory: {full}")

    def check_read(target, dir_fd=None):
        if isinstance(target, int) or target in streams:
            return
        full = resolve(target, dir_fd)
        if full == workdir or full.startswith(inside) or full in devices:
            return
        if (full + os.sep).startswith(read_roots):
            return
        deny(f"read outside the sandbox directory: {full}")

    def on_open(args):
        target, _mode, flags = args[:3]
        if (flags or 0) & write_flags:
            # Opening the directory itself for writing only works with O_TMPFILE, which
            # creates an unnamed file inside it.
            if not isinstance(target, int) and resolve(target) == workdir:
                return
            check_write(target)
        else:
            check_read(target)

    def on_symlink(args):
        source, link, dir_fd = args[:3]
        check_write(link, dir_fd, "symlink")
        where = os.path.dirname(resolve(link, dir_fd))
        pointee = os.path.realpath(os.path.join(where, os.fsdecode(source)))
        if not pointee.startswith(inside):
            deny(f"symlink to outside the sandbox directory: {pointee}")

    def on_chdir(args):
        full = resolve(args[0])
        if full != workdir and not full.startswith(inside):
            deny(f"chdir outside the sandbox directory: {full}")

    def on_kill(args):
        if args[0] != own_pid:
            deny("signalling other processes is disabled in the sandbox")

    def on_socket(args):
        if args[1] != _socket.AF_UNIX:
            deny("network access is disabled in the sandbox")

    def on_import(args):
        if str(args[0]).partition(".")[0] in blocked_modules:
            raise SandboxBlockedImport(f"import of {args[0]} is disabled in the sandbox")

    def refuse(message):
        return lambda args: deny(message)

    processes = refuse("starting processes is disabled in the sandbox")
    network = refuse("network access is disabled in the sandbox")
    handlers = {
        "open": on_open,
        "os.remove": lambda a: check_write(a[0], a[1], "delete"),
        "os.rmdir": lambda a: check_write(a[0], a[1], "delete"),
        "os.mkdir": lambda a: check_write(a[0], a[2], "mkdir"),
        "os.rename": lambda a: [check_write(a[i], a[i + 2], "rename") for i in (0, 1)],
        "os.link": lambda a: [check_write(a[i], a[i + 2], "link") for i in (0, 1)],
        "os.symlink": on_symlink,
        "os.chmod": lambda a: check_write(a[0], a[2], "chmod"),
        "os.chown": lambda a: check_write(a[0], a[3], "chown"),
        "os.utime": lambda a: check_write(a[0], a[3], "utime"),
        "os.truncate": lambda a: check_write(a[0], None, "truncate"),
        "os.setxattr": lambda a: check_write(a[0], None, "setxattr"),
        "os.removexattr": lambda a: check_write(a[0], None, "removexattr"),
        "shutil.rmtree": lambda a: check_write(a[0], a[1] if len(a) > 1 else None, "delete"),
        "os.chdir": on_chdir,
        "os.fork": processes,
        "os.forkpty": processes,
        "os.system": processes,
        "os.exec": processes,
        "os.spawn": processes,
        "os.posix_spawn": processes,
        "subprocess.Popen": processes,
        "os.kill": on_kill,
        "os.killpg": refuse("signalling process groups is disabled in the sandbox"),
        "resource.setrlimit": refuse("changing resource limits is disabled in the sandbox"),
        "resource.prlimit": lambda a: len(a) > 2 and a[2] is not None and deny(
            "changing resource limits is disabled in the sandbox"
        ),
        "socket.__new__": on_socket,
        "socket.connect": network,
        "socket.bind": network,
        "socket.sendto": network,
        "socket.sendmsg": network,
        "socket.getaddrinfo": network,
        "socket.gethostbyname": network,
        "socket.gethostbyaddr": network,
        "socket.getnameinfo": network,
        "socket.sethostname": network,
        "import": on_import,
        "ctypes.dlopen": refuse("ctypes is disabled in the sandbox"),
        "ctypes.dlsym": refuse("ctypes is disabled in the sandbox"),
        "ctypes.cdata": refuse("ctypes is disabled in the sandbox"),
        "fcntl.ioctl": refuse("ioctl is disabled in the sandbox"),
    }

    def audit(event, args):
        handler = handlers.get(event)
        if handler is not None:
            handler(args)

    # Functions that raise no audit event are replaced where the program finds them.
    def stub(name):
        def refused(*args, **kwargs):
            deny(f"{name} is disabled in the sandbox")

        refused.__name__ = name
        return refused

    for module in (os, posix):
        for name in (
            "setsid", "setpgid", "setpgrp", "setuid", "seteuid", "setgid", "setegid",
            "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "initgroups",
            "chroot", "mknod", "mkfifo", "pidfd_open", "unshare", "setns",
        ):
            if hasattr(module, name):
                setattr(module, name, stub(f"os.{name}"))
    _posixsubprocess.fork_exec = stub("_posixsubprocess.fork_exec")
    if hasattr(signal, "pidfd_send_signal"):
        signal.pidfd_send_signal = stub("signal.pidfd_send_signal")

    real_open = os.open

    def guarded_open(target, flags, mode=0o777, *, dir_fd=None):
        # The "open" audit event does not carry dir_fd, so check the real location here.
        if dir_fd is not None:
            (check_write if flags & write_flags else check_read)(target, dir_fd)
        return real_open(target, flags, mode, dir_fd=dir_fd)

    os.open = posix.open = guarded_open
    sys.addaudithook(audit)


_sandbox_main()
'''
