"""``api_cached_rerun``: the ``api_throughput`` partition materialized again, through Dagster.

``requests`` (sent by the re-run) must be 0; ``ratio`` = re-run wall time / first-run wall
time, both whole in-process materializations of the evaluation job.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig, materialize_api
from eval_pipeline_tests.bench._common import MODEL, prepare, server_dict, timed, write_result

NAME = "api_cached_rerun"
REQUESTS = 2000
LATENCY_S = 0.1
CONCURRENCY = 64


def run(requests: int = REQUESTS) -> dict[str, Any]:
    from eval_pipeline_tests.helpers import materialization_metadata

    config = ServerConfig(latency_s=LATENCY_S)
    with ApiServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp), server.openai_base_url, requests, concurrency=CONCURRENCY)
        project, store_root = Path(tmp) / "project", Path(tmp) / "store"
        partition = f"synth|{MODEL}"
        server.reset()
        with timed() as first_took:
            first = materialize_api(project, store_root, partition)
        first_requests = server.stats()["requests"]
        server.reset()
        with timed() as again_took:
            again = materialize_api(project, store_root, partition)
        rerun_requests = server.stats()["requests"]
        first_meta = materialization_metadata(first, "generations")
        again_meta = materialization_metadata(again, "generations")
    return {
        "ratio": round(again_took["wall_s"] / first_took["wall_s"], 3),
        "requests": rerun_requests,
        "target": "requests == 0",
        "inputs": {
            "samples": requests,
            "latency_s": LATENCY_S,
            "concurrency": CONCURRENCY,
            "server": server_dict(config),
        },
        "first_wall_s": round(first_took["wall_s"], 3),
        "rerun_wall_s": round(again_took["wall_s"], 3),
        "first_requests": first_requests,
        "first_generation_wall_s": first_meta["wall_s"],
        "rerun_generation_wall_s": again_meta["wall_s"],
        "rerun_reused_rows": again_meta["reused_rows"],
        "both_succeeded": bool(first.success and again.success),
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
