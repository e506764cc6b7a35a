"""``api_faults``: 500 requests with 20% 429 (``Retry-After: 1``), 10% 500 and 2% hangs of 120 s.

Concurrency 32. The model uses a 5 s request deadline (50 times the server's latency):
without one a hang costs its full 120 s. ``ratio`` = wall time / the same run without
faults; ``wall_s`` (target under 30 s); ``unanswered`` = rows without an answer (target 0).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig
from eval_pipeline_tests.bench._common import MODEL, prepare, server_dict, timed, write_result

NAME = "api_faults"
REQUESTS = 500
LATENCY_S = 0.1
CONCURRENCY = 32
FAULTS = {"429": 0.2, "500": 0.1, "hang": 0.02}
MODEL_OPTIONS = {"request_timeout_s": 5.0}


def run(requests: int = REQUESTS) -> dict[str, Any]:
    from eval_pipeline.stages import generate

    faulty = ServerConfig(latency_s=LATENCY_S, faults=FAULTS, retry_after_s=1.0, hang_s=120.0)
    clean = ServerConfig(latency_s=LATENCY_S)
    with ApiServer(clean) as server, tempfile.TemporaryDirectory() as tmp:
        catalog, store = prepare(
            Path(tmp), server.openai_base_url, requests, concurrency=CONCURRENCY, **MODEL_OPTIONS
        )
        server.configure(clean)
        with timed() as baseline:
            clean_report = generate(catalog, store, MODEL, "synth", use_cache=False)
        server.configure(faulty)
        with timed() as took:
            report = generate(catalog, store, MODEL, "synth", use_cache=False)
        stats = server.stats()
        gens = store.read("generations", dataset="synth", model=MODEL)
    unanswered = int(gens["completion"].null_count())
    return {
        "ratio": round(took["wall_s"] / baseline["wall_s"], 3),
        "wall_s": round(took["wall_s"], 3),
        "unanswered": unanswered,
        "target": "wall_s < 30 and unanswered == 0",
        "inputs": {
            "requests": requests,
            "concurrency": CONCURRENCY,
            "latency_s": LATENCY_S,
            "model_options": MODEL_OPTIONS,
            "server": server_dict(faulty),
        },
        "clean_wall_s": round(baseline["wall_s"], 3),
        "clean_errors": clean_report.errors,
        "http_requests": report.stats.attempts,
        "retries": report.stats.retries,
        "server_requests": stats["requests"],
        "server_outcomes": stats["by_outcome"],
        "rows": gens.height,
        "duplicate_rows": gens.height - gens["sample_id"].n_unique(),
        "errors": gens["error"].drop_nulls().to_list()[:5],
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
