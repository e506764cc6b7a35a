"""``metrics serve`` and ``metrics write``: Prometheus metrics of the runs and the store."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import dagster as dg
from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile

from eval_pipeline.cli._common import EXIT_OK, roots, use_dagster_home
from eval_pipeline.defs.metrics import InstanceCollector
from eval_pipeline.operations import StoreCollector
from eval_pipeline.storage import Store


def metrics(args: argparse.Namespace) -> int:
    """Serve the metrics over HTTP, or write them once to a file."""
    root, store_root = roots(args)
    use_dagster_home(root, create=True)
    registry = CollectorRegistry()
    registry.register(StoreCollector(Store(store_root)))
    with dg.DagsterInstance.get() as instance:
        registry.register(InstanceCollector(instance))
        if args.metrics_command == "write":
            target = Path(args.file)
            target.parent.mkdir(parents=True, exist_ok=True)
            # prometheus_client writes a temporary file beside it and renames it.
            write_to_textfile(str(target), registry)
            print(f"eval-pipeline: metrics written to {target}", file=sys.stderr)
            return EXIT_OK
        # SIGTERM and Ctrl-C stop the server through handlers of its own; the inherited ones
        # can keep it serving. polars (imported with the store) catches SIGINT with
        # SA_RESTART, so a blocking wait resumes after Ctrl-C and Python's handler never
        # runs. SIGTERM can arrive ignored, and an ignored signal stays ignored across exec:
        # a parent that ignores SIGINT (a background job) and ran a Dagster job in process
        # ignores SIGTERM too, as Dagster copies SIGINT's handler onto SIGTERM.
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        server, _ = start_http_server(args.port, addr=args.host, registry=registry)
        try:
            print(
                f"eval-pipeline: serving metrics on http://{args.host}:{server.server_port}"
                "/metrics",
                file=sys.stderr,
                flush=True,
            )
            # Timed: a signal that lands just before the wait blocks is handled when it ends.
            while not stop.wait(1.0):
                pass
        finally:
            server.shutdown()
            server.server_close()
            for sig, handler in previous.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, handler)
    return EXIT_OK
