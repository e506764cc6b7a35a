"""``api_rate_limited``: 600 requests against a server that allows 1,200 requests per minute.

The model's ``limits.requests_per_minute`` is set to the server's limit. ``ratio`` =
sustained rate / allowed rate, the sustained rate being what the server saw (requests
after the first / seconds from the first to the last); target >= 0.95 with
``rate_limited_responses`` = 0 (no 429 at all: the client paces itself).
``engine_rate_ratio`` is the stricter figure over the engine's whole wall time (startup and
the last response included).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig
from eval_pipeline_tests.bench._common import MODEL, prepare, server_dict, timed, write_result

NAME = "api_rate_limited"
REQUESTS = 600
ALLOWED_RPM = 1200.0
LATENCY_S = 0.1
CONCURRENCY = 64


def run(requests: int = REQUESTS) -> dict[str, Any]:
    from eval_pipeline.stages import generate

    config = ServerConfig(latency_s=LATENCY_S, rate_limit_rpm=ALLOWED_RPM)
    with ApiServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        catalog, store = prepare(
            Path(tmp),
            server.openai_base_url,
            requests,
            concurrency=CONCURRENCY,
            requests_per_minute=ALLOWED_RPM,
        )
        server.reset()
        with timed() as took:
            report = generate(catalog, store, MODEL, "synth", use_cache=False)
        stats = server.stats()
    allowed = ALLOWED_RPM / 60.0
    # The server's own view: first to last request it received.
    server_span = (stats["last_at"] or 0) - (stats["first_at"] or 0)
    sustained = (stats["requests"] - 1) / server_span if server_span else 0.0
    return {
        "ratio": round(sustained / allowed, 4),
        "engine_rate_ratio": round(requests / report.stats.wall_s / allowed, 4),
        "target": ">= 0.95 with rate_limited_responses == 0",
        "rate_limited_responses": stats["by_outcome"].get("rate_limited", 0),
        "inputs": {
            "requests": requests,
            "allowed_rpm": ALLOWED_RPM,
            "client_requests_per_minute": ALLOWED_RPM,
            "concurrency": CONCURRENCY,
            "latency_s": LATENCY_S,
            "server": server_dict(config),
        },
        "sustained_rps": round(sustained, 3),
        "allowed_rps": allowed,
        "engine_wall_s": round(report.stats.wall_s, 3),
        "stage_wall_s": round(took["wall_s"], 3),
        "server_requests": stats["requests"],
        "server_outcomes": stats["by_outcome"],
        "errors": report.errors,
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
