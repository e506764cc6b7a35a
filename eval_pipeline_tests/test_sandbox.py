"""The sandbox contains loops, memory and fork bombs, stray writes and leaked secrets."""

from __future__ import annotations

import ast
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eval_pipeline.scoring import sandbox
from eval_pipeline.scoring.sandbox import TAIL_BYTES, SandboxResult, run_sandboxed
from eval_pipeline_tests import processes

ENV_KEYS = {
    "PATH",
    "LANG",
    "HOME",
    "TMPDIR",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "PWD",  # bubblewrap's --chdir sets it
}


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is dead, waiting for init to reap it)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _live_in_session(sid: int) -> list[int]:
    """Running processes in session or process group ``sid``, found without the sandbox's code."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and sid in (int(fields[2]), int(fields[3])):
                found.append(int(entry.name))
    return found


def _live_in_directory(path: str) -> list[int]:
    """Running processes whose working directory is ``path`` (seen from the host)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            try:
                if os.readlink(entry / "cwd") == path:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _live_process_count() -> int:
    return sum(
        1 for entry in Path("/proc").iterdir() if entry.name.isdigit() and _alive(int(entry.name))
    )


def _first_int(result: SandboxResult) -> int:
    return int(result.stdout.split()[0])


def test_a_program_that_exits_cleanly_passes_with_its_output_captured():
    result = run_sandboxed("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.status, result.returncode, result.detail) == ("passed", 0, "passed")
    assert result.passed
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert 0 < result.duration_s < 5


def test_a_raising_program_fails_with_the_error_at_the_end_of_the_detail():
    result = run_sandboxed("def f():\n    assert 1 + 1 == 3, 'arithmetic'\nf()")
    assert (result.status, result.returncode) == ("failed", 1)
    assert result.detail.startswith("failed: ")
    assert result.detail.endswith("AssertionError: arithmetic")


@pytest.mark.parametrize(
    "program", ["while True:\n    pass", "import time\ntime.sleep(60)"], ids=["busy", "sleeping"]
)
def test_infinite_loop_is_killed_at_the_timeout_and_reported_as_timeout(program):
    result = run_sandboxed(f"import os\nprint(os.getcwd(), flush=True)\n{program}", timeout_s=1)
    assert (result.status, result.detail) == ("timeout", "timeout after 1s")
    assert result.returncode == -9
    assert 1 <= result.duration_s < 5
    assert _live_in_directory(result.stdout.split()[0]) == []


def test_the_cpu_limit_stops_a_busy_loop_before_the_wall_clock_timeout():
    result = run_sandboxed("while True:\n    pass", timeout_s=30, cpu_s=1)
    assert (result.status, result.detail) == ("timeout", "timeout: CPU limit of 1s")
    assert result.duration_s < 15


@pytest.mark.parametrize(
    "program",
    [
        "block = bytearray(4 * 1024**3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10**6))",
    ],
    ids=["4GB-bytearray", "growing-list"],
)
def test_a_memory_bomb_is_stopped_by_the_memory_limit(program):
    result = run_sandboxed(program, memory_mb=256, timeout_s=20)
    assert result.status == "memory"
    assert result.detail == "memory limit (256 MB): MemoryError"
    assert result.duration_s < 15


def test_a_fork_loop_is_blocked_and_leaves_no_processes_behind():
    before = _live_process_count()
    program = "import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    os.fork()"
    result = run_sandboxed(program, timeout_s=5)
    assert result.status == "blocked"
    assert "starting processes is disabled" in result.detail
    assert _live_in_directory(result.stdout.split()[0]) == []
    # The machine is fine: no flood of processes, and the next program runs normally.
    assert _live_process_count() < before + 20
    assert run_sandboxed("print(1)").status == "passed"


CHILDREN = """
import os, time
print(os.getpid(), flush=True)
for i in range(4):
    if os.fork() == 0:
        if i == 0:
            os.setpgid(0, 0)  # leaves the process group, but not the session
        print("child", os.getpid(), flush=True)
        time.sleep(120)
        os._exit(0)
time.sleep(0.3)
"""


def _children(result: SandboxResult) -> list[int]:
    return [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("child")]


def test_children_left_running_are_killed_when_the_program_exits_even_without_the_guard():
    # Host pids are printed and checked, so this runs without bwrap's PID namespace (which
    # test_sandbox_adversarial.py covers).
    result = run_sandboxed(CHILDREN, timeout_s=10, guard=False, isolation="process")
    assert result.status == "passed"
    children = _children(result)
    assert len(children) == 4
    assert [pid for pid in children if _alive(pid)] == []
    assert _live_in_session(_first_int(result)) == []


def test_children_are_killed_when_the_program_times_out_even_without_the_guard():
    program = CHILDREN.replace("time.sleep(0.3)", "time.sleep(120)")
    result = run_sandboxed(program, timeout_s=1, guard=False, isolation="process")
    assert result.status == "timeout"
    children = _children(result)
    assert len(children) == 4
    assert [pid for pid in children if _alive(pid)] == []
    assert _live_in_session(_first_int(result)) == []


WRITES = {
    "open": "open(TARGET, 'w').write('x')",
    "append": "open(TARGET, 'a').write('x')",
    "pathlib": "import pathlib\npathlib.Path(TARGET).write_text('x')",
    "os.open": "import os\nos.open(TARGET, os.O_WRONLY | os.O_CREAT)",
    "FileIO": "import _io\n_io.FileIO(TARGET, 'w').write(b'x')",
    "copy": "import shutil\nshutil.copy('main.py', TARGET)",
    "rename": "import os\nopen('f', 'w').close()\nos.rename('f', TARGET)",
    "hard-link": "import os\nos.link('main.py', TARGET)",
    "symlink": "import os\nos.symlink(TARGET, 'link')\nopen('link', 'w').write('x')",
    "mkdir": "import os\nos.makedirs(TARGET)",
    "dir_fd": (
        "import os\nfd = os.open('.', os.O_RDONLY)\n"
        "os.open(os.path.relpath(TARGET), os.O_WRONLY | os.O_CREAT, dir_fd=fd)"
    ),
    "chdir": "import os\nos.chdir(os.path.dirname(TARGET))\nopen(TARGET, 'w')",
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_writes_outside_the_working_directory_are_blocked(write, tmp_path):
    targets = [tmp_path / "escaped.txt", Path(f"/tmp/xyz-{uuid.uuid4().hex}")]
    try:
        for target in targets:
            result = run_sandboxed(f"TARGET = {str(target)!r}\n{write}")
            assert result.status == "blocked", result.stderr
            assert "outside the sandbox directory" in result.detail
            assert not target.exists() and not target.is_symlink()
    finally:
        for target in targets:
            if target.is_dir():
                target.rmdir()
            elif target.exists() or target.is_symlink():
                target.unlink()


CHANGES = {
    "remove": "import os\nos.remove(TARGET)",
    "rmtree": "import os, shutil\nshutil.rmtree(os.path.dirname(TARGET))",
    "truncate": "import os\nos.truncate(TARGET, 0)",
    "chmod": "import os\nos.chmod(TARGET, 0o777)",
    "utime": "import os\nos.utime(TARGET, (0, 0))",
    "rename-away": "import os\nos.rename(TARGET, 'stolen')",
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_deleting_or_changing_files_outside_the_working_directory_is_blocked(change, tmp_path):
    target = tmp_path / "keep" / "precious.txt"
    target.parent.mkdir()
    target.write_text("precious")
    target.chmod(0o600)
    before = target.stat()
    result = run_sandboxed(f"TARGET = {str(target)!r}\n{change}")
    assert result.status == "blocked", result.stderr
    after = target.stat()
    assert target.read_text() == "precious"
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


def test_reading_files_outside_the_working_directory_is_blocked(tmp_path):
    secret = tmp_path / "credentials"
    secret.write_text("sk-on-disk-secret")
    result = run_sandboxed(f"print(open({str(secret)!r}).read())")
    assert result.status == "blocked"
    assert "sk-on-disk-secret" not in result.stdout + result.stderr


def test_the_program_may_create_change_and_delete_files_inside_its_working_directory():
    program = """
import os, shutil, tempfile
os.makedirs("a/b")
with open("a/b/c.txt", "w") as f:
    f.write("hello")
os.rename("a/b/c.txt", "a/d.txt")
os.chmod("a/d.txt", 0o600)
with tempfile.NamedTemporaryFile("w", delete=False) as tmp:
    tmp.write("tmp")
assert os.path.dirname(tmp.name) == os.getcwd()
os.chdir("a")
with open("e.txt", "w") as f:
    f.write("in a subdirectory")
os.chdir("..")
shutil.rmtree("a")
os.remove(tmp.name)
print(sorted(os.listdir(".")))
"""
    result = run_sandboxed(program)
    assert result.status == "passed", result.stderr
    assert result.stdout == "['main.py']\n"


def test_the_environment_holds_no_secrets_from_the_parent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-secret")
    program = "import os\nprint(dict(os.environ))\nprint(sorted(os.environ))\nprint(os.getcwd())"
    result = run_sandboxed(program)
    assert result.status == "passed"
    assert "sk-planted-secret" not in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout
    env_line, keys_line, cwd_line = result.stdout.splitlines()
    assert set(ast.literal_eval(keys_line)) <= ENV_KEYS
    assert ast.literal_eval(env_line)["HOME"] == cwd_line


def test_the_parent_environment_cannot_be_read_through_proc():
    result = run_sandboxed("import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())")
    assert result.status == "blocked"
    assert result.stdout == ""


@pytest.mark.parametrize(
    "ending",
    ["", "raise ValueError('boom')", "open('/tmp/xyz', 'w')", "while True:\n    pass"],
    ids=["passed", "failed", "blocked", "timeout"],
)
def test_the_working_directory_is_removed_afterwards(ending):
    program = "import os\nprint(os.getcwd(), flush=True)\nopen('left.txt', 'w').write('x')\n"
    result = run_sandboxed(program + ending, timeout_s=1, extra_files={"data/input.txt": "1"})
    workdir = Path(result.stdout.split()[0])
    assert workdir.parent == Path(tempfile.gettempdir()).resolve()
    assert workdir != Path.cwd()
    assert not workdir.exists()


def test_extra_files_are_placed_in_the_working_directory_and_importable():
    files = {"helper.py": "def answer():\n    return 42\n", "data/n.txt": "7"}
    result = run_sandboxed(
        "import helper\nprint(helper.answer() * int(open('data/n.txt').read()))", extra_files=files
    )
    assert result.status == "passed", result.stderr
    assert result.stdout == "294\n"


@pytest.mark.parametrize("name", ["../up.py", "/etc/evil.py", "main.py", "a/../../b.py"])
def test_extra_files_cannot_leave_the_working_directory_or_replace_the_program(name):
    with pytest.raises(ValueError):
        run_sandboxed("pass", extra_files={name: "x"})


BLOCKED = {
    "subprocess": "import subprocess\nsubprocess.run(['true'])",
    "os.system": "import os\nos.system('true')",
    "posix_spawn": "import os\nos.posix_spawn('/bin/true', ['true'], {})",
    "fork_exec": "import _posixsubprocess\n_posixsubprocess.fork_exec()",
    "multiprocessing": (
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\np.join()"
    ),
    "kill-parent": "import os\nos.kill(os.getppid(), 0)",
    "killpg": "import os\nos.killpg(os.getpgid(os.getppid()), 0)",
    "setsid": "import os\nos.setsid()",
    "mknod": "import os, stat\nos.mknod('disk', stat.S_IFBLK | 0o600, os.makedev(8, 0))",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 9))",
    "ctypes": "import ctypes",
    "raise-limits": "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
}


@pytest.mark.parametrize("program", BLOCKED.values(), ids=BLOCKED.keys())
def test_processes_signals_network_ctypes_and_limit_changes_are_blocked(program):
    result = run_sandboxed(program, timeout_s=5)
    assert result.status == "blocked", result.stderr
    assert "disabled in the sandbox" in result.detail


def test_a_blocked_import_is_an_import_error_so_optional_imports_degrade():
    result = run_sandboxed("try:\n    import ctypes\nexcept ImportError:\n    print('fallback')")
    assert (result.status, result.stdout) == ("passed", "fallback\n")


def test_common_libraries_still_work_under_the_guard():
    pytest.importorskip("numpy")
    program = """
import asyncio, json, tempfile, numpy
async def double(x):
    return 2 * x
with tempfile.TemporaryFile() as f:
    f.write(b"ok")
print(asyncio.run(double(21)), int(numpy.arange(5).sum()), json.dumps([1]))
"""
    result = run_sandboxed(program)
    assert result.status == "passed", result.stderr
    assert result.stdout == "42 10 [1]\n"


def test_output_is_cut_to_its_tail():
    result = run_sandboxed("for i in range(20000):\n    print(i)")
    assert result.status == "passed"
    assert result.stdout.startswith("[... ")
    assert result.stdout.endswith("19998\n19999\n")
    assert len(result.stdout) < TAIL_BYTES + 100


def test_output_past_the_file_size_limit_stops_the_program():
    result = run_sandboxed("print('x' * 50_000)", max_file_bytes=10_000)
    assert result.status == "file_limit"


def test_programs_run_with_a_fixed_hash_seed():
    outputs = {run_sandboxed("print(hash('abc'))").stdout for _ in range(2)}
    assert len(outputs) == 1


@pytest.mark.parametrize(
    "limits", [{"timeout_s": 0}, {"memory_mb": 0}, {"max_file_bytes": -1}, {"cpu_s": 0}]
)
def test_non_positive_limits_are_rejected(limits):
    with pytest.raises(ValueError):
        run_sandboxed("pass", **limits)


def test_parallel_runs_do_not_interfere():
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_sandboxed(f"print({i} * 2)"), range(12)))
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(12)]
    assert time.monotonic() - start < 20


def _children_of(parent: int) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (_stat_fields(int(entry.name)) or ["", "0"])[1] == str(parent)
    ]


def test_the_program_dies_with_the_process_that_started_it():
    code = "from eval_pipeline.scoring.sandbox import run_sandboxed\n"
    code += "run_sandboxed('import time\\ntime.sleep(60)', timeout_s=60)"
    children: list[int] = []
    workdirs: list[str] = []
    # The check is of the runner's kill alone: its group is stopped only after it.
    with processes.started([sys.executable, "-c", code], cwd=Path(__file__).parents[1]) as runner:
        deadline = time.monotonic() + 10
        while not children and time.monotonic() < deadline:
            time.sleep(0.05)
            children = _children_of(runner.pid)
        assert children, "the sandboxed program never started"
        time.sleep(0.3)  # let the prelude arm the parent-death signal
        # Only the sandbox is left by now (a quick check that bwrap works comes first).
        children = _children_of(runner.pid)
        # A killed runner cannot remove the working directory, so the test does (read only
        # now: right after the fork the child's cwd is still the runner's).
        workdirs = [os.readlink(f"/proc/{pid}/cwd") for pid in children]
        sandbox_dir = Path(tempfile.gettempdir()).resolve()
        assert all(
            Path(d).parent == sandbox_dir and Path(d).name.startswith("sandbox-") for d in workdirs
        )
        runner.kill()
        runner.wait()
        try:
            deadline = time.monotonic() + 5
            while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [pid for pid in children if _alive(pid)] == []
        finally:
            for workdir in workdirs:
                shutil.rmtree(workdir, ignore_errors=True)


def test_a_python_installed_under_tmp_stays_visible_inside_the_sandbox(monkeypatch):
    from eval_pipeline.scoring import sandbox

    monkeypatch.setattr(sandbox, "_python_roots", lambda: ["/tmp/checkout/.venv"])
    args = sandbox._bwrap_command("/tmp/work", {}, as_pid_1=True, bwrap="/usr/bin/bwrap")
    tmpfs = args.index("--tmpfs")
    venv = args.index("/tmp/checkout/.venv")
    # Binds are applied in order: a bind before the private /tmp would be hidden by it.
    assert args[tmpfs + 1] == "/tmp" and tmpfs < venv


# Four processes of 80 MB each: under a 200 MB per-process limit, over it together.
MEMORY_HOG = """
import os, time
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(80 * 1024 * 1024)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
codes = [os.waitpid(k, 0)[1] for k in kids]
raise SystemExit(0 if all(c == 0 for c in codes) else 3)
"""


@pytest.mark.skipif(
    sandbox._memory_cgroup_root() is None, reason="no memory cgroup: RLIMIT_AS per process only"
)
def test_the_memory_cap_holds_for_all_of_a_programs_processes_together_and_is_reported():
    capped = run_sandboxed(MEMORY_HOG, guard=False, memory_mb=200, timeout_s=20)
    assert capped.status == "memory", capped.detail
    assert capped.detail.startswith("memory limit (200 MB for all its processes)")
    # The same program under a cap it fits passes: the cap, not the program, failed it.
    assert run_sandboxed(MEMORY_HOG, guard=False, memory_mb=600, timeout_s=20).passed
    assert not [
        e
        for e in os.listdir(sandbox._memory_cgroup_root())
        if e.startswith(f"eval-sandbox-{os.getpid()}-")
    ]


@pytest.mark.parametrize(
    "mode,returncode,stderr,verdict,memory_hit,expected",
    [
        ("program", 0, "", "", False, ("passed", "passed")),
        ("tests", 0, "", "", False, ("error", "error: the test supervisor exited without a verdict")),
        ("tests", 0, "", '{"status": "passed"}', False, ("passed", "passed")),
        ("tests", 1, "", '{"status": "passed"}', False, ("failed", "failed: the tests failed")),
        ("program", -24, "", "", False, ("timeout", "timeout: CPU limit of 3s")),
        ("tests", 0, "", '{"status": "failed", "signal": 24}', False, ("timeout", "timeout: CPU limit of 3s")),
        ("program", 1, "MemoryError", "", False, ("memory", "memory limit (64 MB): MemoryError")),
        ("tests", 0, "", '{"status": "failed", "error": "MemoryError"}', False,
         ("memory", "memory limit (64 MB): MemoryError")),
        ("program", -9, "", "", True,
         ("memory", "memory limit (64 MB for all its processes): the kernel killed a process at the cap")),
        ("tests", 0, "", '{"status": "failed", "signal": 9}', True,
         ("memory", "memory limit (64 MB for all its processes): the kernel killed a process at the cap")),
        ("tests", 0, "", '{"status": "failed", "signal": 9}', False, ("killed", "killed by SIGKILL")),
        ("program", 1, "OSError: [Errno 27] File too large", "", False,
         ("file_limit", "file_limit: a file or the output passed 100 bytes")),
        ("tests", 0, "", '{"status": "failed", "error": "SandboxViolation: no"}', False,
         ("blocked", "blocked: SandboxViolation: no")),
    ],
)  # fmt: skip
def test_one_classifier_reads_a_program_and_a_test_run_the_same_way(
    mode: str, returncode: int, stderr: str, verdict: str, memory_hit: bool, expected: tuple
) -> None:
    limits = sandbox._Limits(timeout_s=2, cpu_s=3, memory_mb=64, max_file_bytes=100)
    got = sandbox._classify(mode, True, returncode, stderr, verdict, limits, memory_hit)
    assert got == expected
    assert sandbox._classify(mode, False, returncode, stderr, verdict, limits)[0] == "timeout"
