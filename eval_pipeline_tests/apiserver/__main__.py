"""Run the local API server: ``python -m eval_pipeline_tests.apiserver [--port N] [--config JSON]``.

Prints ``PORT <n>`` on its first line of output once it listens (``--port 0`` picks a
free port), then serves on 127.0.0.1 until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from eval_pipeline_tests.apiserver._server import ServerConfig, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="ServerConfig fields as JSON")
    args = parser.parse_args(argv)
    config = ServerConfig(**json.loads(args.config))
    # SIGTERM ends the server quietly (the parent stops it at teardown).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    try:
        import uvloop  # faster event loop where installed; the server works without it

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve("127.0.0.1", args.port, config, ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
