"""``api_over_limit``: 500 requests against a server that allows less than the catalog says.

The server allows 600 requests per minute (a token bucket refilled at 10 per second,
holding one second's worth); the model's catalog entry says 1,200 requests per minute and
32 in flight. The engine has to find the server's limit from its 429s.

``ratio`` = wall time of that run / wall time of the same run with the catalog's limit
matching the server's (600), target <= 1.15; ``rate_limited_share`` = 429s / HTTP requests
the server saw, target <= 0.05. Both without rate-limit headers, as a generic
OpenAI-compatible server or proxy answers. ``with_headers`` repeats the over-limit run
with the server sending OpenAI's ``x-ratelimit-*-requests`` headers, as api.openai.com
does: the engine then takes the stated limit from the first answer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig
from eval_pipeline_tests.bench._common import MODEL, prepare, server_dict, timed, write_result

NAME = "api_over_limit"
REQUESTS = 500
SERVER_RPM = 600.0
CATALOG_RPM = 1200.0
CONCURRENCY = 32
LATENCY_S = 0.1


def _run(
    server: ApiServer, root: Path, config: ServerConfig, rpm: float, requests: int
) -> dict[str, Any]:
    from eval_pipeline.stages import generate

    catalog, store = prepare(
        root,
        server.openai_base_url,
        requests,
        concurrency=CONCURRENCY,
        requests_per_minute=rpm,
    )
    server.configure(config)  # a full bucket and fresh counts
    with timed() as took:
        report = generate(catalog, store, MODEL, "synth", use_cache=False)
    stats = server.stats()
    limited = stats["by_outcome"].get("rate_limited", 0)
    return {
        "wall_s": round(took["wall_s"], 3),
        "server_requests": stats["requests"],
        "rate_limited": limited,
        "rate_limited_share": round(limited / max(1, stats["requests"]), 4),
        "errors": report.errors,
    }


def run(requests: int = REQUESTS) -> dict[str, Any]:
    plain = ServerConfig(latency_s=LATENCY_S, rate_limit_rpm=SERVER_RPM)
    headers = ServerConfig(latency_s=LATENCY_S, rate_limit_rpm=SERVER_RPM, rate_limit_headers=True)
    with ApiServer(plain) as server, tempfile.TemporaryDirectory() as tmp:
        matched = _run(server, Path(tmp) / "matched", plain, SERVER_RPM, requests)
        over = _run(server, Path(tmp) / "over", plain, CATALOG_RPM, requests)
        with_headers = _run(server, Path(tmp) / "headers", headers, CATALOG_RPM, requests)
    return {
        "ratio": round(over["wall_s"] / matched["wall_s"], 4),
        "rate_limited_share": over["rate_limited_share"],
        "target": "ratio <= 1.15 and rate_limited_share <= 0.05",
        "inputs": {
            "requests": requests,
            "server_rpm": SERVER_RPM,
            "catalog_rpm": CATALOG_RPM,
            "concurrency": CONCURRENCY,
            "latency_s": LATENCY_S,
            "server": server_dict(plain),
        },
        "matched": matched,
        "over_limit": over,
        "with_headers": {
            **with_headers,
            "ratio": round(with_headers["wall_s"] / matched["wall_s"], 4),
        },
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
