"""What the benchmarks share: output files, machine facts, a prepared project, timing."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ServerConfig, api_model, make_api_project

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("EVAL_PIPELINE_BENCH_DIR", REPO / ".bench"))
KEY_ENV = "EVAL_BENCH_API_KEY"
MODEL = "bench-model"


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``.bench/<name>.json`` with the machine's facts added."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    result = {"name": name, **result, "machine": machine()}
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # The development machines are shared: the load says how noisy the timings are.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def server_dict(config: ServerConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)


def prepare(
    root: Path, base_url: str, samples: int, *, provider: str = "openai", **model: Any
) -> tuple[Any, Any]:
    """A project with one API model and the ``synth`` dataset, its inputs materialized.

    Returns the catalog and the store, ready for :func:`eval_pipeline.stages.generate`.
    """
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.stages import build_dataset_samples, build_prompt_versions
    from eval_pipeline.storage import Store

    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    entry = api_model(MODEL, provider, base_url, api_key_env=KEY_ENV, **model)
    project = make_api_project(root / "project", [entry], samples)
    catalog, store = load_catalog(project), Store(root / "store")
    build_prompt_versions(catalog, store, "synth")
    build_dataset_samples(catalog, store, "synth")
    return catalog, store


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, in the yielded dict once it ends."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall_s"] = time.perf_counter() - wall
        out["cpu_s"] = time.process_time() - cpu


def messages_for(samples: int) -> list[list[dict[str, str]]]:
    """The rendered messages of the ``synth`` dataset (what the reference client sends)."""
    return [
        [{"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"}]
        for i in range(samples)
    ]
