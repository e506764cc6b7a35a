"""``api_throughput``: 2,000 requests at 100 ms latency and concurrency 64.

``ratio`` = the generation stage's wall time (``stages.generate``: render prompts, cache
lookups, the engine, the Parquet write) / the reference client's wall time for the same
requests against the same server in the same run. Pairs alternate, and the medians are
compared, because the development machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig
from eval_pipeline_tests.bench import reference_client
from eval_pipeline_tests.bench._common import MODEL, prepare, server_dict, timed, write_result

NAME = "api_throughput"
REQUESTS = 2000
LATENCY_S = 0.1
CONCURRENCY = 64
REPEATS = 3


def run(requests: int = REQUESTS, repeats: int = REPEATS) -> dict[str, Any]:
    from eval_pipeline.stages import generate
    from eval_pipeline.stages.generate import build_requests, load_inputs, sampling_for

    config = ServerConfig(latency_s=LATENCY_S)
    pairs = []
    with ApiServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        catalog, store = prepare(
            Path(tmp), server.openai_base_url, requests, concurrency=CONCURRENCY
        )
        spec = catalog.model(MODEL)
        samples, prompt = load_inputs(store, "synth")
        sampling = sampling_for(catalog, spec, "synth")
        conversations = [
            [m.as_dict() for m in r.messages]
            for r in build_requests(spec, samples, prompt, sampling)
        ]
        for _ in range(repeats):
            server.reset()
            cpu0 = server.stats()["cpu_s"]
            with timed() as ref:
                answers = reference_client.run(
                    server.openai_base_url,
                    spec.model_id,
                    conversations,
                    concurrency=CONCURRENCY,
                    max_tokens=sampling.max_tokens,
                )
            ref_stats = server.stats()
            server.reset()
            cpu1 = server.stats()["cpu_s"]
            with timed() as ours:
                report = generate(catalog, store, MODEL, "synth", use_cache=False)
            our_stats = server.stats()
            pairs.append(
                {
                    "reference_wall_s": round(ref["wall_s"], 3),
                    "reference_cpu_s": round(ref["cpu_s"], 3),
                    "reference_requests": ref_stats["requests"],
                    "reference_server_cpu_s": round(ref_stats["cpu_s"] - cpu0, 3),
                    "reference_answered": sum(a is not None for a in answers),
                    "ours_wall_s": round(ours["wall_s"], 3),
                    "ours_cpu_s": round(ours["cpu_s"], 3),
                    "ours_engine_wall_s": round(report.stats.wall_s, 3),
                    "ours_requests": our_stats["requests"],
                    "ours_server_cpu_s": round(our_stats["cpu_s"] - cpu1, 3),
                    "ours_errors": report.errors,
                }
            )
    ref_wall = statistics.median(p["reference_wall_s"] for p in pairs)
    ours_wall = statistics.median(p["ours_wall_s"] for p in pairs)
    engine_wall = statistics.median(p["ours_engine_wall_s"] for p in pairs)
    floor = requests * LATENCY_S / CONCURRENCY
    return {
        "ratio": round(ours_wall / ref_wall, 3),
        "target": "<= 1.10",
        "limit_ratio": round(ours_wall / floor, 3),
        "engine_ratio": round(engine_wall / ref_wall, 3),
        "inputs": {
            "requests": requests,
            "latency_s": LATENCY_S,
            "concurrency": CONCURRENCY,
            "repeats": repeats,
            "server": server_dict(config),
        },
        "reference_wall_s_median": ref_wall,
        "ours_wall_s_median": ours_wall,
        "ours_engine_wall_s_median": engine_wall,
        "floor_s": floor,
        "pairs": pairs,
        "notes": (
            "ratio: stages.generate (prompt rendering + cache lookups + engine + Parquet write) "
            "over the reference client; engine_ratio: run_requests alone over the reference."
        ),
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
