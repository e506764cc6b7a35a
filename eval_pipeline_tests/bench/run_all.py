"""Run every benchmark (``make bench``); each writes ``.bench/<name>.json``.

``scale`` (the 100 x 100 grid) takes a few minutes, ``scale_daemon`` (its first night
under a real daemon) about 15; ``python -m
eval_pipeline_tests.bench.scale --postgres`` runs its schedule tick on PostgreSQL, and
``--datasets`` the per-dataset tables' bookkeeping over 1,000 models of one dataset.

Names on the command line run only those (``python -m eval_pipeline_tests.bench.run_all
api_throughput``); ``local_generation`` loads the real model and takes minutes, and
``finetune`` trains a LoRA adapter and evaluates it against its base (15 to 20 minutes on
2 shared cores). A benchmark that raises still leaves a file, with an ``error`` field
saying what failed.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

from eval_pipeline_tests.bench._common import write_result

BENCHMARKS = (
    "api_throughput",
    "api_rate_limited",
    "api_over_limit",
    "api_faults",
    "api_cached_rerun",
    "api_peers",
    "api_batch",
    "fuzz",
    "local_generation",
    "scale",
    "scale_daemon",
    "incremental",
    "lmeval_agreement",
    "lmeval_tasks",
    "newcomer",
    "finetune",
    "judging",
)


def main(names: list[str] | None = None) -> int:
    failed = 0
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"eval_pipeline_tests.bench.{name}")
        start = time.perf_counter()
        try:
            result = module.run()
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            result = {
                "ratio": None,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        result["bench_wall_s"] = round(time.perf_counter() - start, 1)
        path = write_result(name, result)
        shown = {k: result.get(k) for k in ("ratio", "error") if result.get(k) is not None}
        print(f"{name}: {shown} -> {path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
