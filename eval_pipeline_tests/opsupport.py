"""Support for the schedule, sensor, PostgreSQL and browser tests.

A local webhook receiver, a stand-in regression check, and runs of the regression suite.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg

from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.jobs import SAMPLE_LIMIT_TAG
from eval_pipeline.resources.alerts import AlertsResource

ONE_MODEL = {
    "models": [
        {
            "slug": "fake-good",
            "provider": "fake",
            "model_id": "fake/reference",
            "options": {"mode": "reference"},
        }
    ]
}


class Receiver:
    """A webhook on 127.0.0.1 that records JSON bodies and answers scripted statuses.

    With ``reply``, a 200 answers that JSON body (a stand-in for a GraphQL server).
    """

    def __init__(self, statuses: Sequence[int] = (), reply: dict | None = None):
        self.statuses = list(statuses)  # answered in order, then 200
        self.bodies: list[dict] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.requests += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status == 200:
                        receiver.bodies.append(json.loads(body))
                self.send_response(status)
                if status == 200 and reply is not None:
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps(reply).encode())
                    return
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"unavailable")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def events(self) -> list[dict]:
        return [e for b in self.bodies for e in b["eval_pipeline"].get("events", [])]


@contextmanager
def receiver(statuses: Sequence[int] = (), reply: dict | None = None) -> Iterator[Receiver]:
    """A running :class:`Receiver`, shut down on exit."""
    r = Receiver(statuses, reply)
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


# What the webserver answers a successful ``reloadRepositoryLocation``.
RELOADED = {
    "data": {
        "reloadRepositoryLocation": {
            "__typename": "WorkspaceLocationEntry",
            "name": "eval_pipeline",
            "locationOrLoadError": {"__typename": "RepositoryLocation", "name": "eval_pipeline"},
        }
    }
}


def alerts_to(url: str | None, attempts: int = 3) -> AlertsResource:
    """An alerts resource posting to ``url`` with short waits between tries."""
    return AlertsResource(
        webhook_url=url, ui_base_url="http://ui.test", attempts=attempts, backoff_s=0.01
    )


def stand_in_regression_check(
    grid: dg.PartitionsDefinition,
    *,
    passed: bool,
    metric: str = "answer_match",
    delta: float = -0.2,
) -> dg.AssetChecksDefinition:
    """A check with the name, partitioning and metadata of the real ``aggregates_regression``."""

    @dg.asset_check(
        asset="aggregates", name="aggregates_regression", partitions_def=grid, blocking=False
    )
    def aggregates_regression(context) -> dg.AssetCheckResult:
        """Stand-in: passes or fails as the test says."""
        metadata = {"baseline": "pinned-test", "regressed_metrics": "" if passed else metric}
        if not passed:
            metadata.update({f"{metric}/delta": delta, f"{metric}/p_value": 0.004})
        return dg.AssetCheckResult(passed=passed, metadata=metadata)

    return aggregates_regression


def run_suite(
    project: Path,
    store: Path,
    partition: str | None,
    instance: dg.DagsterInstance,
    *,
    tags: dict[str, str] | None = None,
    sample_limit: int = 3,
    regression: bool | None = None,
    job: str = "regression_suite_job",
) -> dg.ExecuteInProcessResult:
    """Run ``job`` for one partition on a few samples, as the schedule would launch it.

    ``partition`` None: the partitions ``tags`` select (a partition range).

    With ``regression`` set, the stand-in ``aggregates_regression`` check joins the job and
    passes (True) or fails (False).
    """
    defs = build_definitions(str(project), str(store))
    if regression is not None:
        # The stand-in replaces the real check, whose outcome depends on a pinned baseline.
        grid = defs.resolve_assets_def("aggregates").partitions_def
        real = dg.AssetCheckKey(dg.AssetKey("aggregates"), "aggregates_regression")
        defs = dg.Definitions(
            assets=defs.assets,
            asset_checks=[
                *(c for c in defs.asset_checks or [] if real not in c.check_keys),
                stand_in_regression_check(grid, passed=regression),
            ],
            jobs=defs.jobs,
            resources=defs.resources,
        )
    job_def = defs.resolve_job_def(job)
    return job_def.execute_in_process(
        partition_key=partition,
        instance=instance,
        tags={SAMPLE_LIMIT_TAG: str(sample_limit), **(tags or {})},
        raise_on_error=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def no_dangling_defs_state():
    """Run a block with no current defs-state storage, and restore it afterwards.

    Dagster keeps the defs-state storage of the last instance it set up in a context
    variable, held by weak reference; an instance that a sensor context or a run created
    and dropped leaves a dangling one behind, and the next Definitions resolution fails
    with "Attempted to resolve undefined DagsterInstance weakref".
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


def wait_for_webserver(proc, url: str, log: Path, timeout_s: float = 120) -> float:
    """Wait until the webserver ``proc`` answers at ``url``; returns the deadline it had.

    Fails with the tail of ``log`` if the process exits first.
    """
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return deadline
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the webserver did not come up in {timeout_s:.0f} s"
        time.sleep(0.3)


def stop_group(proc, timeout_s: float = 30) -> None:
    """Stop ``proc`` and its process group (from :func:`eval_pipeline_tests.processes.start`).

    SIGTERM, up to ``timeout_s`` for the group to exit, then SIGKILL; a group that has exited
    already is not an error.
    """
    from eval_pipeline_tests import processes

    processes.stop(proc, timeout_s=timeout_s)


@contextmanager
def webserver(home: Path, project: Path, log: Path, env: dict[str, str] | None = None):
    """``dagster-webserver`` over ``project`` (the repository's workspace.yaml); yields its URL.

    It loads the code location in a code server of its own, as under ``make ui``.
    """
    import os
    import subprocess
    import sys
    import time

    from eval_pipeline_tests import processes

    repo = Path(__file__).resolve().parents[1]
    port = free_port()
    # ``env`` adds to the environment; the instance and the project are always these (a
    # caller's copy of os.environ may name another DAGSTER_HOME, e.g. under `make bench`).
    environ = {
        **os.environ,
        **(env or {}),
        "DAGSTER_HOME": str(home),
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(project / "store"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    binary = Path(sys.executable).parent / "dagster-webserver"
    out = log.open("w")
    proc = processes.start(
        [str(binary), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        env=environ,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = wait_for_webserver(proc, url, log)
        while location_status(url) != "LOADED":
            assert time.monotonic() < deadline, "the code location did not load in 120 s"
            time.sleep(0.3)
        yield url
    finally:
        stop_group(proc)
        out.close()


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 120) -> dict:
    """POST one GraphQL query to the webserver at ``url``; its ``data`` (no errors allowed)."""
    import httpx

    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
    )
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus updatedTimestamp } } } }
"""


def location_status(url: str, name: str = "eval_pipeline") -> str | None:
    """The webserver's load status of code location ``name`` (LOADING, LOADED)."""
    entries = graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
    return next((e["loadStatus"] for e in entries if e["name"] == name), None)
