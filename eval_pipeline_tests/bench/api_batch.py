"""``api_batch``: the same rows through the batch route and the online route, local server.

Two models per route, one OpenAI and one Anthropic, answer ``ROWS`` rows each:

- ``cost_ratio``: batch cost over online cost (target <= 0.5);
- ``answers_equal``: the batch route's completions equal the online route's, row by row;
- ``duplicate_batches_after_kill``: a child process SIGKILLs itself at each of 3 points
  (input uploaded, batch created but not recorded, results half collected), then the
  partition resumes; batches created beyond one per submission (target 0);
- ``process_held_s``: seconds a process stayed alive while the partition's batch was
  pending, for a batch that completes ``PENDING_S`` after creation (target <= 10): the
  submitting run ends once the batch is created, and a later run (the batch sensor's)
  collects it;
- ``plan_error``: the expected cost ``eval-pipeline plan`` gives before the batch run
  (tokens measured on the online run's rows) over the batch run's actual cost, minus 1
  (target within +-0.2); ``plan_error_estimated`` is the same from a fresh store
  (characters / 4 in, ``max_tokens`` out: the worst case).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver import ApiServer
from eval_pipeline_tests.apiserver._process import REPO
from eval_pipeline_tests.batch_helpers import (
    KEY_ENV,
    KILL_POINTS,
    batch_count,
    batch_project,
    generate_partition,
    killed_run,
    prepare,
)
from eval_pipeline_tests.bench._common import write_result

NAME = "api_batch"
ROWS = 2000
KILL_ROWS = 200
PENDING_S = 120.0
FLAVOUR = {"oa": "openai", "an": "anthropic"}


def _plan_cost(project: Path, store: Path, model: str, rows: int) -> float:
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.stages.plan import plan_partition
    from eval_pipeline.storage import Store

    catalog = load_catalog(project)
    return plan_partition(
        catalog, Store(store), model, "synth", sample_limit=rows
    ).cost_expected_usd


def _completions(store: Path, model: str) -> list[str | None]:
    from eval_pipeline.storage import Store

    return Store(store).read("generations", dataset="synth", model=model)["completion"].to_list()


def _duplicates(tmp: Path, rows: int, points: tuple[str, ...]) -> dict[str, int]:
    """Batches beyond one per partition after a SIGKILL at each point, per point and model."""
    found = {}
    for point in points:
        # A server per point: Anthropic adoption looks at the account's recent batches.
        with ApiServer() as server:
            project = batch_project(tmp / f"kill-{point}", server, rows)
            store = tmp / f"kill-{point}" / "store"
            prepare(project, store)
            for model in ("oa", "an"):
                killed_run(project, store, model, point)
                report = generate_partition(project, store, model)
                if report.errors:
                    raise RuntimeError(f"{model} after a kill at {point}: {report.errors} errors")
                found[f"{point}/{model}"] = batch_count(server, FLAVOUR[model]) - 1
    return found


HELD_CHILD = """
import sys
from pathlib import Path
from eval_pipeline.engine.batch import BatchesPending
from eval_pipeline_tests.batch_helpers import generate_partition
try:
    generate_partition(Path(sys.argv[1]), Path(sys.argv[2]), "oa", batch_wait=False)
except BatchesPending:
    pass  # submitted: the collecting run comes later
"""


def _process_held(tmp: Path, pending_s: float) -> dict[str, float]:
    """How long the submitting process lived while its batch was pending.

    It submits without waiting (what a run tagged ``eval_pipeline/batch_wait=sensor``
    does) and ends; once the batch has completed, a second run (the one the batch sensor
    requests) collects it, and every row must be answered without a second batch.
    """
    with ApiServer() as server:
        server.configure_batches(complete_after_s=pending_s)
        project = batch_project(tmp / "held", server, 20)
        store = tmp / "held" / "store"
        prepare(project, store)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        start = time.monotonic()
        with processes.started(
            [sys.executable, "-c", HELD_CHILD, str(project), str(store)],
            cwd=str(REPO),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as child:
            created = None
            while child.poll() is None:
                if created is None and server.batches():
                    created = time.monotonic()
                time.sleep(0.05)
        ended = time.monotonic()
        if child.returncode != 0 or created is None:
            raise RuntimeError(f"the generating process failed (rc {child.returncode})")
        # Nothing runs while the batch is pending; then the collecting run.
        time.sleep(max(0.0, created + pending_s - time.monotonic()))
        report = generate_partition(project, store, "oa")
        if report.errors or batch_count(server, "openai") != 1:
            raise RuntimeError("the collecting run did not answer every row from the one batch")
    return {
        "process_held_s": round(ended - created, 2),
        "submitting_process_wall_s": round(ended - start, 2),
        "collecting_run_wall_s": round(report.stats.wall_s, 2),
    }


def run(
    rows: int = ROWS,
    kill_rows: int = KILL_ROWS,
    pending_s: float = PENDING_S,
    points: tuple[str, ...] = KILL_POINTS,
) -> dict[str, Any]:
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    with tempfile.TemporaryDirectory() as tmp_name, ApiServer() as server:
        tmp = Path(tmp_name)
        server.configure_batches(complete_after_s=1.0)
        project = batch_project(tmp / "main", server, rows, online_twins=True)
        store, fresh = tmp / "main" / "store", tmp / "main" / "fresh"
        prepare(project, store)
        prepare(project, fresh)
        per_model: dict[str, Any] = {}
        batch_cost = online_cost = 0.0
        equal = True
        plan_errors, estimated_errors = [], []
        for model in ("oa", "an"):
            estimated = _plan_cost(project, fresh, model, rows)
            start = time.perf_counter()
            online = generate_partition(project, store, f"{model}-online", sample_limit=rows)
            online_s = time.perf_counter() - start
            planned = _plan_cost(project, store, model, rows)
            start = time.perf_counter()
            batch = generate_partition(project, store, model, sample_limit=rows)
            batch_s = time.perf_counter() - start
            same = _completions(store, model) == _completions(store, f"{model}-online")
            equal = equal and same and batch.errors == 0 and online.errors == 0
            batch_cost += batch.stats.cost_usd
            online_cost += online.stats.cost_usd
            plan_errors.append(planned / batch.stats.cost_usd - 1)
            estimated_errors.append(estimated / batch.stats.cost_usd - 1)
            per_model[model] = {
                "batch_cost_usd": round(batch.stats.cost_usd, 6),
                "online_cost_usd": round(online.stats.cost_usd, 6),
                "planned_cost_usd": round(planned, 6),
                "planned_cost_fresh_store_usd": round(estimated, 6),
                "batch_ids": list(batch.stats.batch_ids),
                "batch_wall_s": round(batch_s, 2),
                "online_wall_s": round(online_s, 2),
                "answers_equal": same,
            }
        duplicates = _duplicates(tmp, kill_rows, points)
        held = _process_held(tmp, pending_s)
    return {
        "cost_ratio": round(batch_cost / online_cost, 4),
        "answers_equal": equal,
        "duplicate_batches_after_kill": sum(duplicates.values()),
        "process_held_s": held["process_held_s"],
        "plan_error": round(max(plan_errors, key=abs), 4),
        "plan_error_estimated": round(max(estimated_errors, key=abs), 4),
        "target": (
            "cost_ratio <= 0.5, answers_equal, duplicate_batches_after_kill == 0, "
            "process_held_s <= 10, |plan_error| <= 0.2"
        ),
        "waiting": "submit and end; a later run collects (batch_collect_sensor's)",
        "inputs": {
            "rows": rows,
            "kill_rows": kill_rows,
            "pending_s": pending_s,
            "kill_points": list(points),
        },
        "per_model": per_model,
        "duplicates_by_point": duplicates,
        **held,
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
