"""How fast the static results explorer opens on a large synthetic store.

A store of ``models x datasets`` partitions of ``samples`` samples each (synthetic rows in
the real schemas), the explorer written from it, then opened from the file system in
headless Chromium: the time from navigation to the rendered heatmap, to a partition's
samples after a click, and, for one partition of 10,000 samples, to its first rows and
to the rows at the bottom after a scroll. The ratio is the open time of the big grid over
that of a 10 x 10 grid: near 1 would mean the page's cost does not grow with partitions.

    PYTHONPATH=$PWD .venv/bin/python -m eval_pipeline_tests.bench.explorer_open [models datasets samples]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from eval_pipeline.core.schemas import TABLES
from eval_pipeline.report import ExplorerInput, write_explorer_files
from eval_pipeline.storage import Store
from eval_pipeline_tests.bench._common import write_result
from eval_pipeline_tests.chromium import launched


def synthetic_store(root: Path, models: int, datasets: int, samples: int) -> ExplorerInput:
    """Write ``models x datasets`` partitions straight into the store's latest files."""
    store = Store(root)
    ids = [f"s{i:05d}" for i in range(samples)]
    primary = {}
    for d in range(datasets):
        dataset = f"set-{d:03d}"
        primary[dataset] = "acc"
        _table(
            {
                "dataset": dataset,
                "sample_id": ids,
                "dataset_version": "v1",
                "fields": '{"question": "q"}',
                "target": "yes",
                "tags": [["easy" if i % 2 else "hard"] for i in range(samples)],
                "row_hash": "h",
            },
            "dataset_samples",
        ).write_parquet(_mkdir(store.path("dataset_samples", dataset)))
        for m in range(models):
            model = f"model-{m:03d}"
            right = [(i * 7 + m * 3 + d) % 10 < 6 + m % 4 for i in range(samples)]
            gens = _table(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt_version": "p@1",
                    "sample_id": ids,
                    "dataset_version": "v1",
                    "provider": "fake",
                    "model_id": "fake/x",
                    "model_revision": "",
                    "sampling_params": "{}",
                    "messages": json.dumps(
                        [{"role": "user", "content": "Is it? Answer yes or no."}]
                    ),
                    "request_hash": "r",
                    "completion": ["yes" if r else "no" for r in right],
                    "finish_reason": "stop",
                    "input_tokens": 12,
                    "output_tokens": 2,
                    "cost_usd": 0.00001,
                    "error": None,
                    "code_version": "c",
                    "answer_mode": "generate",
                    "latency_s": 0.05,
                    "cached": False,
                },
                "generations",
            )
            gens.write_parquet(_mkdir(store.path("generations", dataset, model)))
            values = [1.0 if r else 0.0 for r in right]
            _table(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt_version": "p@1",
                    "sample_id": ids,
                    "metric": "acc",
                    "value": values,
                    "detail": "",
                    "request_hash": "r",
                    "code_version": "c",
                    "answer_mode": "generate",
                },
                "scores",
            ).write_parquet(_mkdir(store.path("scores", dataset, model)))
            mean = sum(values) / len(values)
            row = {name: None for name in TABLES["aggregates"].names()}
            row.update(
                model=model,
                dataset=dataset,
                prompt_version="p@1",
                metric="acc",
                n=samples,
                mean=mean,
                ci_low=max(0.0, mean - 0.2),
                ci_high=min(1.0, mean + 0.2),
                samples=samples,
                error_count=0,
                cost_usd=0.0002,
                input_tokens=12 * samples,
                output_tokens=2 * samples,
            )
            pl.DataFrame([row], schema=TABLES["aggregates"]).write_parquet(
                _mkdir(store.path("aggregates", dataset, model))
            )
    return ExplorerInput(primary=primary)


def _table(columns: dict, table: str) -> pl.DataFrame:
    # The store's schema of ``table``; columns not given (added since) are null.
    schema = TABLES[table]
    height = max((len(v) for v in columns.values() if isinstance(v, list)), default=1)
    full = {n: columns.get(n, [None] * height) for n in schema.names()}
    return pl.DataFrame(full, schema=schema)


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _open(browser, index: Path, cells: int) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    start = time.perf_counter()
    page.goto(index.as_uri())
    page.wait_for_function("window.__explorerReady !== undefined", timeout=120_000)
    wall = time.perf_counter() - start
    ready = page.evaluate("window.__explorerReady")
    shown = page.locator("td.cell").count()
    assert shown == cells, f"{shown} cells shown, {cells} expected"
    click = time.perf_counter()
    page.locator("td.cell a").first.click()
    page.wait_for_selector(".row")
    drill = time.perf_counter() - click
    page.close()
    return {"ready_ms": round(ready, 1), "open_wall_s": round(wall, 3), "drill_s": round(drill, 3)}


def _scroll(browser, index: Path, pid: str, samples: int) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    start = time.perf_counter()
    page.goto(index.as_uri() + "#/p/" + pid.replace("@", "%40"))
    page.wait_for_selector(".row")
    first = time.perf_counter() - start
    rows = page.locator(".row").count()
    scroll = time.perf_counter()
    page.evaluate("document.getElementById('rows').scrollTop = 1e9")
    page.wait_for_selector(f'.row[data-i="{samples - 1}"]')
    bottom = time.perf_counter() - scroll
    page.close()
    return {
        "first_rows_s": round(first, 3),
        "rows_in_dom": rows,
        "scroll_to_end_s": round(bottom, 3),
    }


def run(
    models: int = 100,
    datasets: int = 100,
    samples: int = 20,
    deep: int = 10_000,
    browser: bool = True,
) -> dict:
    """Build the stores and explorer files; time them in Chromium unless ``browser`` is off.

    ``deep`` is the sample count of the one-partition store whose scrolling is timed.
    """
    result: dict = {"models": models, "datasets": datasets, "samples": samples}
    with tempfile.TemporaryDirectory(prefix="explorer-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        big = synthetic_store(tmp / "big", models, datasets, samples)
        result["store_build_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        big_index = write_explorer_files(Store(tmp / "big"), tmp / "big-explorer", big)
        result["explorer_write_s"] = round(time.perf_counter() - t, 1)
        result["index_js_bytes"] = (tmp / "big-explorer" / "data" / "index.js").stat().st_size
        small = synthetic_store(tmp / "small", 10, 10, samples)
        small_index = write_explorer_files(Store(tmp / "small"), tmp / "small-explorer", small)
        deep_store = synthetic_store(tmp / "deep", 1, 1, deep)
        deep_index = write_explorer_files(Store(tmp / "deep"), tmp / "deep-explorer", deep_store)
        if not browser:
            return result
        with launched() as chromium:
            _open(chromium, small_index, 100)  # warm the browser's caches once
            result["small_10x10"] = _open(chromium, small_index, 100)
            result["big"] = _open(chromium, big_index, models * datasets)
            result[f"partition_{deep}_samples"] = _scroll(
                chromium, deep_index, "set-000@model-000", deep
            )
    result["ratio"] = round(result["big"]["ready_ms"] / result["small_10x10"]["ready_ms"], 2)
    return result


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    out = run(*args)
    path = write_result("explorer_open", out)
    print(json.dumps(out, indent=2), f"\n-> {path}")
