"""The sandboxed side of ``sandbox.py``: run as ``python -c <this file's text>``, never imported.

It runs inside the child before anything else: limits, then either the program as
``__main__`` ("program" mode) or the test supervisor and the solution process ("tests"
mode). Its arguments: mode, working directory, limits, parent pid (0 under bwrap), guard flag
and the verdict descriptor (-1 in program mode). It uses the standard library alone and
imports lazily, because every import costs start-up time on every run.
"""

from __future__ import annotations  # already loaded by site: costs nothing here

import sys

# The names annotations use, for the type checker only (mypy reads this flag by name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from collections.abc import Callable
    from typing import Any, NoReturn

# Trusted code never imports from the working directory: a solution could plant json.py there.
sys.path[:] = [p for p in sys.path if p not in ("", ".")]


def _sandbox_main() -> None:
    import os
    import resource

    mode, workdir = sys.argv[1], os.path.realpath(sys.argv[2])
    memory_bytes, cpu_s, file_bytes, nproc, parent_pid, guard, verdict_fd = map(int, sys.argv[3:10])

    def limit(kind: int, soft: int, hard: int) -> None:
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))

    limit(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    limit(resource.RLIMIT_FSIZE, file_bytes, file_bytes)
    limit(resource.RLIMIT_CORE, 0, 0)
    limit(resource.RLIMIT_NPROC, nproc, nproc)

    sealed = False
    if parent_pid or mode == "tests":
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if parent_pid:
                # PR_SET_PDEATHSIG (1): die with the process that started us, even if it is
                # SIGKILLed (under bwrap, --die-with-parent does this).
                libc.prctl(1, 9, 0, 0, 0)
            if mode == "tests":
                # PR_SET_DUMPABLE (4) = 0: without capabilities, no other process may read
                # or write our memory or descriptors (/proc/<pid>/mem, /fd, ptrace).
                sealed = libc.prctl(4, 0, 0, 0, 0) == 0
        except Exception:
            pass
        finally:
            _forget_ctypes()
        if parent_pid and os.getppid() != parent_pid:
            os._exit(137)  # the parent died before the death signal was armed
    if mode == "tests" and not sealed:
        # Without it the solution process could reach the verdict: judge nothing.
        os.write(verdict_fd, b'{"status": "error", "error": "cannot seal the test supervisor"}')
        os._exit(1)

    if mode == "tests":
        _supervise(workdir, guard, verdict_fd)
    else:
        _run_program(workdir, guard)


def _forget_ctypes() -> None:
    # Model code then has to import ctypes again, which the guard refuses.
    for name in list(sys.modules):
        if name in ("ctypes", "_ctypes") or name.startswith("ctypes."):
            del sys.modules[name]


def _load(workdir: str, guard: int) -> tuple[types.ModuleType, types.CodeType]:
    """Compile main.py, install the guard, return (module, code); may raise SyntaxError."""
    import builtins
    import os
    import types

    path = os.path.join(workdir, "main.py")
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    sys.path.insert(0, workdir)  # as for `python main.py`: its own files are importable
    if guard:
        _install_guard(workdir)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins  # type: ignore[attr-defined]  # a module's own builtins slot
    sys.modules["__main__"] = main
    sys.argv = [path]
    return main, code


def _run_program(workdir: str, guard: int) -> None:
    main, code = _load(workdir, guard)
    exec(code, main.__dict__)


# --- run_tests: a supervisor (trusted) and a solution process (untrusted) -----------------

_MESSAGE_LIMIT = 16 * 1024 * 1024


# Values crossing the sandbox are the solution's own (any built-in type): ``Any`` on purpose.
def _encode(value: Any, depth: int = 0) -> Any:
    # Exact built-in types only: a subclass could rig __eq__, __hash__ or __repr__.
    if depth > 200:
        raise ValueError("a value nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if kind is list:
        return [_encode(v, depth + 1) for v in value]
    if kind is tuple or kind is set or kind is frozenset:
        return {kind.__name__: [_encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise TypeError(f"a value of type {kind.__name__} cannot cross the sandbox")


def _decode(data: Any, depth: int = 0) -> Any:
    if depth > 200:
        raise ValueError("a value nested too deeply")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is list:
        return [_decode(v, depth + 1) for v in data]
    if kind is dict and len(data) == 1:
        ((tag, inner),) = data.items()
        if tag in ("tuple", "set", "frozenset") and type(inner) is list:
            items = [_decode(v, depth + 1) for v in inner]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict" and type(inner) is list:
            out = {}
            for pair in inner:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("a malformed dict")
                out[_decode(pair[0], depth + 1)] = _decode(pair[1], depth + 1)
            return out
        if tag == "bytes" and type(inner) is str:
            return bytes.fromhex(inner)
        if tag == "complex" and type(inner) is list and len(inner) == 2:
            if all(type(part) in (int, float) for part in inner):
                return complex(inner[0], inner[1])
    raise ValueError("a malformed value")


def _send(fd: int, message: list[Any]) -> None:
    import json
    import os

    data = json.dumps(message).encode()
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    import os

    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> list[Any] | None:
    """The next message, or None at end of file; ValueError on a malformed one."""
    import json

    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > _MESSAGE_LIMIT:
        raise ValueError(f"a message of {size} bytes")
    data = _read_exact(fd, size)
    if data is None:
        return None
    message = json.loads(data)
    if type(message) is not list or not message or type(message[0]) is not str:
        raise ValueError("a malformed message")
    return message


def _error_line(exc: BaseException) -> str:
    import traceback

    lines = traceback.format_exception_only(type(exc), exc)
    return (lines[-1] if lines else type(exc).__name__).strip()[:1000]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _serve(workdir: str, guard: int, requests: int, replies: int) -> None:
    """The solution process: load main.py, then answer calls until the supervisor stops."""
    import os

    try:
        main, code = _load(workdir, guard)
        exec(code, main.__dict__)
    except SystemExit:
        _flush()
        _send(replies, ["exited"])
        os._exit(0)
    except BaseException as exc:
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
        _flush()
        _send(replies, ["error", _error_line(exc)])
        os._exit(1)
    _send(replies, ["ready"])
    while True:
        message = _receive(requests)
        if message is None:
            _flush()
            os._exit(0)
        _, name, args, kwargs = message
        try:
            function = main.__dict__.get(name)
            if function is None:
                raise NameError(f"name {name!r} is not defined")
            value = function(*_decode(args), **_decode(kwargs))
            try:
                reply = ["return", _encode(value)]
            except (TypeError, ValueError) as exc:
                reply = ["raise", "TypeError", f"TypeError: the solution returned {exc}"]
        except BaseException as exc:
            reply = ["raise", type(exc).__name__, _error_line(exc)]
        _flush()
        _send(replies, reply)


def _supervise(workdir: str, guard: int, verdict_fd: int) -> None:
    """The supervisor: fork the solution process, then run the tests and write the verdict."""
    import json
    import os
    import signal
    import traceback  # noqa: F401 (loaded before the fork, from the Python installation)

    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # Before any model code: no verdict descriptor, no test source (stdin), and
            # only this process's ends of the pipes.
            os.close(verdict_fd)
            os.close(requests_w)
            os.close(replies_r)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            _serve(workdir, guard, requests_r, replies_w)
        finally:
            os._exit(1)
    os.close(requests_r)
    os.close(replies_w)
    try:
        verdict = _judge(pid, requests_w, replies_r)
    except BaseException as exc:
        verdict = {"status": "error", "error": f"the test supervisor failed: {_error_line(exc)}"}
    os.write(verdict_fd, json.dumps(verdict).encode())
    _flush()
    # End the solution process here: the scorer's cleanup then finds nothing left to wait for.
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass  # already reaped while judging
    os._exit(0)


class _SolutionExited(Exception):
    pass


class _SolutionError(Exception):
    """An exception of the solution's that is not a built-in one; its text is the line."""


def _judge(pid: int, requests: int, replies: int) -> dict[str, object]:
    import builtins
    import json
    import os
    import signal
    import time

    # Read only now, after the fork: the solution process never holds the tests.
    problem = json.loads(sys.stdin.buffer.read())

    outcome: dict[str, object] = {}

    def ended() -> dict[str, object]:
        # How the solution process ended: a signal names a limit (SIGXCPU, SIGXFSZ).
        if outcome:
            return outcome
        deadline = time.monotonic() + 1.0
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            outcome.update(signal=sig, error=f"the solution process was killed by signal {sig}")
        else:
            outcome.update(error="the program exited before the tests finished")
        return outcome

    def failed(**fields: object) -> dict[str, object]:
        return {"status": "failed", **fields}

    try:
        hello = _receive(replies)
    except ValueError as exc:
        return failed(error=f"the solution process sent {exc}")
    if hello is None or hello[0] == "exited":
        return failed(**ended())
    if hello[0] != "ready":
        return failed(error=str(hello[1]) if len(hello) > 1 else "the solution did not load")

    entry_point, check_name = problem["entry_point"], problem["check"]
    # What the problem's own code defines there: any value (``Any`` on purpose).
    namespace: dict[str, Any] = {"__name__": "__check__", "__builtins__": builtins}
    try:
        helpers = problem["helpers"]
        try:
            compiled = compile(helpers, "<problem>", "exec")
        except SyntaxError:
            cut = helpers.find(f"def {entry_point}(")
            compiled = compile(helpers[: max(cut, 0)], "<problem>", "exec")
        exec(compiled, namespace)
        exec(compile(problem["tests"], "<tests>", "exec"), namespace)
        check = namespace[check_name]
    except BaseException as exc:
        return {"status": "error", "error": f"the problem's tests cannot run: {_error_line(exc)}"}

    broken: list[dict[str, object]] = []

    def candidate(*args: object, **kwargs: object) -> Any:
        try:
            message = ["call", entry_point, _encode(list(args)), _encode(kwargs)]
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the sandbox cannot pass an argument: {exc}") from None
        try:
            _send(requests, message)
            reply = _receive(replies)
        except BrokenPipeError:
            reply = None
        except ValueError as exc:
            broken.append({"error": f"the solution process sent {exc}"})
            raise _SolutionError(broken[-1]["error"]) from None
        if reply is None:
            broken.append(ended())
            raise _SolutionExited()
        if reply[0] == "return" and len(reply) == 2:
            try:
                return _decode(reply[1])
            except (TypeError, ValueError) as exc:
                raise _SolutionError(f"the solution returned {exc}") from None
        if reply[0] == "raise" and len(reply) == 3:
            name, line = str(reply[1]), str(reply[2])
            kind = getattr(builtins, name, None) if name.isidentifier() else None
            if isinstance(kind, type) and issubclass(kind, Exception):
                text = line.split(": ", 1)[1] if line.startswith(f"{name}: ") else ""
                try:
                    error = kind(text) if text else kind()
                except Exception:
                    error = _SolutionError(line)
                raise error
            raise _SolutionError(line)
        raise _SolutionError("the solution process sent a malformed reply")

    candidate.__name__ = candidate.__qualname__ = entry_point
    namespace[entry_point] = candidate
    try:
        check(candidate)
    except _SolutionExited:
        return failed(**broken[0])
    except _SolutionError as exc:
        return failed(error=str(exc))
    except BaseException as exc:
        return failed(error=_error_line(exc))
    # Tests that swallow exceptions must not hide a solution process that broke off.
    if broken:
        return failed(**broken[0])
    return {"status": "passed"}


def _install_guard(workdir: str) -> None:
    import _posixsubprocess
    import _socket
    import os
    import posix
    import signal
    import sys

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

    # Bound now: the program may replace module attributes the checks would look up later.
    realpath, readlink, getcwd, fsdecode = os.path.realpath, os.readlink, os.getcwd, os.fsdecode
    join, isabs, dirname = os.path.join, os.path.isabs, os.path.dirname
    busy: list[str] = []  # non-empty while a check runs: code the program slipped into it sees this

    def deny(message: str) -> NoReturn:
        raise SandboxViolation(message)

    def resolve(target: str | bytes | int, dir_fd: int | None = None) -> str:
        if isinstance(target, int):
            if target < 0:
                return ""  # no file: outside every allowed folder
            return realpath(readlink(f"/proc/self/fd/{target}"))
        name = fsdecode(target)
        if dir_fd is not None and dir_fd >= 0 and not isabs(name):
            base = readlink(f"/proc/self/fd/{dir_fd}")
        else:
            base = getcwd()
        return realpath(join(base, name))

    def check_write(target: Any, dir_fd: int | None = None, action: str = "write") -> None:
        # An already open descriptor was checked when it was opened.
        if isinstance(target, int) or target in streams:
            return
        full = resolve(target, dir_fd)
        if full.startswith(inside) or full in devices:
            return
        deny(f"{action} outside the sandbox directory: {full}")

    def check_read(target: Any, dir_fd: int | None = None) -> None:
        if isinstance(target, int) or target in streams:
            return
        full = resolve(target, dir_fd)
        if full == workdir or full.startswith(inside) or full in devices:
            return
        if (full + os.sep).startswith(read_roots):
            return
        deny(f"read outside the sandbox directory: {full}")

    def on_open(args: tuple[Any, ...]) -> None:
        target, _mode, flags = args[:3]
        if (flags or 0) & write_flags:
            # Opening the directory itself for writing only works with O_TMPFILE, which
            # creates an unnamed file inside it.
            if not isinstance(target, int) and resolve(target) == workdir:
                return
            check_write(target)
        else:
            check_read(target)

    def on_symlink(args: tuple[Any, ...]) -> None:
        source, link, dir_fd = args[:3]
        check_write(link, dir_fd, "symlink")
        where = dirname(resolve(link, dir_fd))
        pointee = realpath(join(where, fsdecode(source)))
        if not pointee.startswith(inside):
            deny(f"symlink to outside the sandbox directory: {pointee}")

    def on_chdir(args: tuple[Any, ...]) -> None:
        full = resolve(args[0])
        if full != workdir and not full.startswith(inside):
            deny(f"chdir outside the sandbox directory: {full}")

    def on_kill(args: tuple[Any, ...]) -> None:
        if args[0] != own_pid:
            deny("signalling other processes is disabled in the sandbox")

    def on_socket(args: tuple[Any, ...]) -> None:
        if args[1] != _socket.AF_UNIX:
            deny("network access is disabled in the sandbox")

    def on_import(args: tuple[Any, ...]) -> None:
        if str(args[0]).partition(".")[0] in blocked_modules:
            raise SandboxBlockedImport(f"import of {args[0]} is disabled in the sandbox")

    def refuse(message: str) -> Callable[[tuple[Any, ...]], None]:
        return lambda args: deny(message)

    # The ways Python code reaches the guard's own objects to switch it off: walking the
    # collector's objects, a traceback's frames (a refused operation's traceback holds the
    # guard's frames), tracing, and frames taken while a check runs (the program may have
    # slipped its own function into one, through a module attribute a check calls).
    generator_frames = frozenset(("gi_frame", "cr_frame", "ag_frame"))

    def on_getattr(args: tuple[Any, ...]) -> None:
        if len(args) > 1 and (
            args[1] == "tb_frame" or (args[1] in generator_frames and len(busy) > 1)
        ):
            deny(f"reading {args[1]} is disabled in the sandbox")

    def on_getframe(args: tuple[Any, ...]) -> None:
        if len(busy) > 1:  # this event's own entry is the first
            deny("inspecting frames during a sandbox check is disabled in the sandbox")

    introspection = refuse("walking the garbage collector is disabled in the sandbox")
    tracing = refuse("tracing and profiling are disabled in the sandbox")

    def both(action: str) -> Callable[[tuple[Any, ...]], None]:
        def check(a: tuple[Any, ...]) -> None:
            for i in (0, 1):
                check_write(a[i], a[i + 2], action)

        return check

    processes = refuse("starting processes is disabled in the sandbox")
    network = refuse("network access is disabled in the sandbox")
    handlers = {
        "open": on_open,
        "os.remove": lambda a: check_write(a[0], a[1], "delete"),
        "os.rmdir": lambda a: check_write(a[0], a[1], "delete"),
        "os.mkdir": lambda a: check_write(a[0], a[2], "mkdir"),
        "os.rename": both("rename"),
        "os.link": both("link"),
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
        "resource.prlimit": lambda a: (
            len(a) > 2
            and a[2] is not None
            and deny("changing resource limits is disabled in the sandbox")
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
        "gc.get_objects": introspection,
        "gc.get_referrers": introspection,
        "gc.get_referents": introspection,
        "sys._current_frames": refuse("reading other threads' frames is disabled in the sandbox"),
        "sys.settrace": tracing,
        "sys.setprofile": tracing,
        "object.__getattr__": on_getattr,
        "sys._getframe": on_getframe,
    }
    lookup = handlers.get

    def audit(event: str, args: tuple[Any, ...]) -> None:
        handler = lookup(event)
        if handler is not None:
            busy.append(event)
            try:
                handler(args)
            finally:
                busy.pop()

    # Functions that raise no audit event are replaced where the program finds them.
    def stub(name: str) -> Callable[..., None]:
        def refused(*args: object, **kwargs: object) -> None:
            deny(f"{name} is disabled in the sandbox")

        refused.__name__ = name
        return refused

    for module in (os, posix):
        for name in (
            "setsid",
            "setpgid",
            "setpgrp",
            "setuid",
            "seteuid",
            "setgid",
            "setegid",
            "setreuid",
            "setregid",
            "setresuid",
            "setresgid",
            "setgroups",
            "initgroups",
            "chroot",
            "mknod",
            "mkfifo",
            "pidfd_open",
            "unshare",
            "setns",
        ):
            if hasattr(module, name):
                setattr(module, name, stub(f"os.{name}"))
    _posixsubprocess.fork_exec = stub("_posixsubprocess.fork_exec")  # type: ignore[assignment]  # replaced on purpose
    if hasattr(signal, "pidfd_send_signal"):
        signal.pidfd_send_signal = stub("signal.pidfd_send_signal")

    real_open = os.open

    def guarded_open(
        target: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        # The "open" audit event does not carry dir_fd, so check the real location here.
        if dir_fd is not None:
            (check_write if flags & write_flags else check_read)(target, dir_fd)
        return real_open(target, flags, mode, dir_fd=dir_fd)

    os.open = posix.open = guarded_open  # type: ignore[assignment]  # replaced on purpose
    sys.addaudithook(audit)


if __name__ == "__main__":
    _sandbox_main()
