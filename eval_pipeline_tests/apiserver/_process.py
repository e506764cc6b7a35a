"""Start, control and stop the local API server in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver._server import ServerConfig

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    """The local API server in a subprocess; use as a context manager."""

    def __init__(self, config: ServerConfig | None = None, start_timeout_s: float = 30.0):
        self._config = config or ServerConfig()
        self._start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:PORT`` (Anthropic's base URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> ApiServer:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.proc = processes.start(
            [
                sys.executable,
                "-m",
                "eval_pipeline_tests.apiserver",
                "--port",
                "0",
                "--config",
                json.dumps(asdict(self._config)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        deadline = time.monotonic() + self._start_timeout_s
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"local API server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, timeout_s=10)
        self.proc = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}{path}", json=payload, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def configure(self, config: ServerConfig | None = None, **fields: Any) -> None:
        """Replace the server's configuration (and reset its counts)."""
        config = config or ServerConfig(**fields)
        self._call("POST", "/_control/config", asdict(config))

    def reset(self) -> None:
        self._call("POST", "/_control/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_control/stats")

    def configure_batches(self, **fields: Any) -> None:
        """Set the batch endpoints' :class:`~._batch.BatchConfig` (completion delay, faults)."""
        self._call("POST", "/_control/batch_config", fields)

    def batches(self) -> list[dict[str, Any]]:
        """Every batch created so far, both flavours: id, flavour, request count, metadata."""
        return self._call("GET", "/_control/batches")
