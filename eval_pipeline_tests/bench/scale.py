"""How the project copes with a grid of 100 models x 100 datasets (10,000 partitions).

Writes ``.bench/scale.json`` (``.bench/scale_pg.json`` with ``--postgres``). A synthetic
project (fake models, 100 copies of the ``qa`` dataset) is generated under a temporary
folder; nothing calls a real model. Figures, each with the bound it is held to:

- ``definitions_load_s``: loading ``eval_pipeline.definitions`` and resolving every job,
  schedule and sensor in a fresh interpreter (imports included) (<= 3 s)
- ``catalog_reload_s``: a model added to the catalog, the webserver asked to reload the
  code location (what ``catalog_sensor`` does), until it answers with the new grid
  loaded; ``webserver_start_s``: the webserver up with the location loaded
- ``schedule_tick_s``: one nightly schedule tick with a successful suite run recorded
  for every partition (10,000 runs; a few partitions changed, a few in flight) (<= 5 s);
  ``first_night_tick_s``: the tick on an empty instance, requesting all 10,000 partitions
  as ``first_night_runs`` runs (one per model, each a range of its datasets)
- ``versions_tick_s``: a tick of ``versions_sensor`` over the grid (hashing every model
  entry and each dataset's prompt, rows, scorers and judges) after its first
  (``versions_first_tick_s``)
- ``single_partition_s``: ``eval-pipeline run`` of one partition on every sample, the
  whole command (interpreter start, definitions, the run, the reporting run) (<= 5 s)
- ``leaderboard_s`` / ``leaderboard_rss_mb``: ``reporting_job`` over a store holding the
  aggregates of all 10,000 partitions, in a fresh process (<= 30 s, <= 1 GB)
- with ``--postgres``: ``schedule_tick_pg_s``, the same tick on a PostgreSQL instance
  (127.0.0.1:5432, trust authentication, a throwaway database) (<= 10 s)
- with ``--datasets`` (``.bench/scale_datasets.json``, ``EVAL_PIPELINE_SCALE_MODELS``
  models, 1,000 by default, x 1 dataset): the bookkeeping of the per-dataset tables when
  one run covers every model of a dataset. ``dataset_tables_grid_*``: partitioned on the
  grid as they were (one materialization per model x dataset); ``dataset_tables_*``: the
  refresh ``generations`` does now (one per dataset and changed version), first run and
  rerun: seconds of the step and materializations recorded
- with ``--reload`` (``.bench/scale_reload.json``): a real webserver and daemon, as ``make
  ui`` starts them and under ``dagster dev``; a model added after ``catalog_sensor``'s
  first tick; the sensor's ticks after the change, until one requests the new partitions
- with ``--daemon`` (``.bench/scale_daemon.json``): a real ``dagster-daemon`` ticking the
  nightly schedule every minute over the grid (its gRPC call has a 60 s deadline); the
  tick's status and duration as the daemon recorded them, and the runs it queued;
  ``run_create_s`` against ``run_create_one_by_one_s``, one night's run of one model
  created with its plan written at once and event by event (:func:`run_creation`). Then
  the first night (empty history) on three instances (:func:`first_night_launches`):
  ``first_night_runs``, the runs the daemon's tick requested (<= the models), and
  ``first_night_launch_s``, from the tick until the daemon has dequeued and launched
  every one of them (<= 60 s); beside it ``first_night_launch_ui_queue_s`` (``make ui``'s
  run queue, runs that take no time) and ``first_night_launch_ui_s`` (``make ui`` as it
  is: the runs executed four at a time; None when the watch ended first, with
  ``ui_started_s_estimate``), and ``first_night_automation_runs``, the runs the
  automation sensor requested while the night ran under ``make ui`` (nothing changed,
  so 0)

Run records are inserted in bulk (:mod:`eval_pipeline_tests.runseed`), not executed.
``EVAL_PIPELINE_SCALE_N=20`` runs the same on a 20 x 20 grid (a quick look).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eval_pipeline_tests import processes
from eval_pipeline_tests.bench._common import REPO, write_result

BOUNDS = {
    "definitions_load_s": 3.0,
    "schedule_tick_s": 5.0,
    "single_partition_s": 5.0,
    "leaderboard_s": 30.0,
    "leaderboard_rss_mb": 1024.0,
    "schedule_tick_pg_s": 10.0,
    "first_night_launch_s": 60.0,
    # The automation sensor's runs during the first night under make ui: none is due.
    "first_night_automation_runs": 0,
}
SCHEDULE = "nightly_regression_suite_schedule"
PG = {
    "DAGSTER_PG_HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "DAGSTER_PG_PORT": os.environ.get("PGPORT", "5432"),
    "DAGSTER_PG_USER": os.environ.get("PGUSER", "postgres"),
    "DAGSTER_PG_PASSWORD": os.environ.get("PGPASSWORD", ""),
}


def grid_size() -> int:
    return int(os.environ.get("EVAL_PIPELINE_SCALE_N", "100"))


def make_grid_project(root: Path, models: int, datasets: int) -> Path:
    """A project with ``models`` fake models and ``datasets`` copies of ``qa``."""
    root.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "slug": f"m{i:03d}",
            "provider": "fake",
            "model_id": f"fake/m{i:03d}",
            "options": {"mode": "reference"},
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        }
        for i in range(models)
    ]
    (root / "models.yaml").write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    spec = (REPO / "datasets" / "qa" / "dataset.yaml").read_text()
    for i in range(datasets):
        folder = root / "datasets" / f"qa-{i:03d}"
        folder.mkdir(parents=True)
        shutil.copy(REPO / "datasets" / "qa" / "data.jsonl", folder / "data.jsonl")
        (folder / "dataset.yaml").write_text(spec.replace("name: qa\n", f"name: qa-{i:03d}\n", 1))
    shutil.copytree(REPO / "prompts", root / "prompts")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.update(extra)
    return env


def definitions_load(project: Path, home: Path) -> dict[str, float]:
    """Seconds to import the definitions and resolve every job, schedule and sensor."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from eval_pipeline.definitions import defs\n"
        "repo = defs.get_repository_def()\n"
        "jobs = repo.get_all_jobs(); schedules = repo.schedule_defs; sensors = repo.sensor_defs\n"
        "print(time.perf_counter() - t)\n"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(EVAL_PIPELINE_ROOT=str(project), DAGSTER_HOME=str(home)),
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "definitions_load_s": round(float(out.stdout.strip().splitlines()[-1]), 2),
        "definitions_process_s": round(time.perf_counter() - start, 2),
    }


def seed_suite_history(instance, catalog, keys: list[str], now: float) -> dict[str, int]:
    """A successful suite run per partition an hour ago; 1% with older inputs, 0.5% busy."""
    import dagster as dg

    from eval_pipeline.operations import partition_fingerprints
    from eval_pipeline_tests.runseed import SeedRun, seed_runs

    fingerprints = partition_fingerprints(catalog, keys)
    runs = []
    for i, key in enumerate(keys):
        stale = i % 100 == 7
        fp = "0" * 16 if stale else fingerprints[key]
        runs.append(SeedRun(key, dg.DagsterRunStatus.SUCCESS, now - 3600, fp))
    in_flight = keys[3::200]
    busy = [SeedRun(k, dg.DagsterRunStatus.STARTED, now - 60) for k in in_flight]
    start = time.perf_counter()
    seed_runs(instance, [*runs, *busy])
    return {
        "seeded_runs": len(runs) + len(busy),
        "seed_s": round(time.perf_counter() - start, 1),
        "expected_due": sum(
            1 for i, k in enumerate(keys) if i % 100 == 7 and k not in set(in_flight)
        ),
    }


def tick(defs, instance, project: Path, when: dt.datetime):
    """Evaluate the nightly schedule once, as the daemon does; returns (seconds, data)."""
    import dagster as dg

    from eval_pipeline.resources import CatalogResource

    schedule = defs.resolve_schedule_def(SCHEDULE)
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"catalog": CatalogResource(root=str(project))},
        repository_def=defs.get_repository_def(),
    )
    start = time.perf_counter()
    data = schedule.evaluate_tick(context)
    return time.perf_counter() - start, data


def schedule_ticks(project: Path, instance, prefix: str = "") -> dict[str, Any]:
    """The first-night tick (empty history), then a tick with the grid's history seeded."""
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.defs import build_definitions

    defs = build_definitions(str(project), str(project / "store"))
    catalog = load_catalog(str(project), load_rows=False)
    keys = [
        str(k) for k in defs.resolve_assets_def("generations").partitions_def.get_partition_keys()
    ]
    now = dt.datetime.now(dt.UTC)
    first_s, first = tick(defs, instance, project, now)
    seeded = seed_suite_history(instance, catalog, keys, now.timestamp())
    seconds, data = tick(defs, instance, project, now)
    # The tick's answer: 1% of partitions have new inputs, minus those in flight (runs,
    # and the partitions they cover).
    due = len(data.run_requests or [])
    return {
        f"{prefix}first_night_tick_s": round(first_s, 2),
        # Runs the first night requests (one per model: a range of its datasets each), and
        # the partitions they cover.
        f"{prefix}first_night_runs": len(first.run_requests or []),
        f"{prefix}first_night_partitions": sum(_covered(r) for r in first.run_requests or []),
        f"{prefix}schedule_tick_s": round(seconds, 2),
        f"{prefix}schedule_tick_requests": due,
        f"{prefix}schedule_tick_partitions": sum(_covered(r) for r in data.run_requests or []),
        **{f"{prefix}{k}": v for k, v in seeded.items()},
        "partitions": len(keys),
    }


def versions_tick(project: Path, instance) -> dict[str, float]:
    """Two ``versions_sensor`` ticks over the grid (the first records, the second compares).

    ``versions_tick_s`` is the second: what the sensor costs every minute.
    """
    from eval_pipeline_tests.bench.incremental import Harness

    harness = Harness(project, project / "store", instance)
    start = time.perf_counter()
    harness.tick_versions()
    first = time.perf_counter() - start
    start = time.perf_counter()
    harness.tick_versions()
    return {
        "versions_first_tick_s": round(first, 2),
        "versions_tick_s": round(time.perf_counter() - start, 2),
    }


def _covered(request) -> int:
    """How many partitions a run request covers (one, or its range's inputs)."""
    from eval_pipeline.defs.schedules import run_inputs

    return 1 if request.partition_key else len(run_inputs(request.tags))


def write_aggregates(store_root: Path, models: int, datasets: int) -> float:
    """Aggregates of every partition (two metrics each), as the pipeline writes them."""
    from eval_pipeline.core.schemas import AGGREGATES
    from eval_pipeline.storage import Store

    store = Store(store_root)
    start = time.perf_counter()
    for d in range(datasets):
        for m in range(models):
            model, dataset = f"m{m:03d}", f"qa-{d:03d}"
            mean = ((m * 7 + d * 3) % 100) / 100
            frame = pl.DataFrame(
                {
                    "model": [model] * 2,
                    "dataset": [dataset] * 2,
                    "prompt_version": ["qa@bench"] * 2,
                    "metric": ["answer_match", "numeric_match"],
                    "n": [155, 80],
                    "mean": [mean, mean / 2],
                    "stderr": [0.03, 0.04],
                    "ci_low": [max(mean - 0.06, 0.0), 0.0],
                    "ci_high": [min(mean + 0.06, 1.0), 0.5],
                    "pass_at_1": [None, None],
                    "samples": [155, 155],
                    "error_count": [0, 0],
                    "input_tokens": [3100, 3100],
                    "output_tokens": [900, 900],
                    "cost_usd": [0.0049, 0.0049],
                    "dataset_version": [f"{dataset}@bench"] * 2,
                    "code_version": ["bench"] * 2,
                    "latency_p50_s": [0.01, 0.01],
                    "latency_p95_s": [0.02, 0.02],
                    "cache_hit_rate": [0.0, 0.0],
                }
            )
            # The columns the bench does not vary (telemetry, sandbox flags): null.
            frame = frame.with_columns(
                pl.lit(None).alias(name) for name in AGGREGATES.names() if name not in frame.columns
            )
            store.write("aggregates", frame, dataset=dataset, model=model)
    return time.perf_counter() - start


def _report_main(project: str, store: str) -> None:
    """In a fresh process: run reporting_job; print seconds and peak RSS as JSON."""
    import resource

    import dagster as dg

    from eval_pipeline import stages
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.defs import build_definitions
    from eval_pipeline.storage import Store

    # The leaderboard table alone (lazy scan, Parquet, Markdown for the metadata), apart
    # from the HTML report with its plots that the same step renders.
    start = time.perf_counter()
    board = stages.build_leaderboard(load_catalog(project, load_rows=False), Store(store))
    stages.leaderboard_markdown(board, max_rows=100)
    table_s = time.perf_counter() - start
    table_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    defs = build_definitions(project, store)
    job = defs.resolve_job_def("reporting_job")
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        seconds = time.perf_counter() - start
        meta, steps, started = {}, {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type_value == "STEP_START":
                started[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                steps[event.step_key] = round(entry.timestamp - started[event.step_key], 2)
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            meta[mat.asset_key.to_user_string()] = sum(
                len(str(v.value)) for v in mat.metadata.values()
            )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "ok": result.success,
                "seconds": seconds,
                "rss_mb": rss_mb,
                "steps": steps,
                "table_s": table_s,
                "table_rss_mb": table_rss_mb,
                "metadata_chars": meta,
            }
        )
    )


def _run_create_main(project: str, home: str) -> None:
    """In a fresh process: create one night's run of one model, three times; print JSON.

    The run is ``regression_suite_job`` over the model's datasets, as the schedule
    requests it, on ``home``'s instance; the JSON holds the seconds per run.
    ``DAGSTER_EVENT_BATCH_SIZE`` in the environment decides whether the plan is written
    at once.
    """
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.defs import build_definitions
    from eval_pipeline.defs.schedules import RANGE_END_TAG, RANGE_START_TAG

    catalog = load_catalog(project, load_rows=False)
    model = catalog.model_slugs[0]
    job = build_definitions(project, str(Path(home) / "store")).resolve_job_def(
        "regression_suite_job"
    )
    tags = {
        RANGE_START_TAG: f"{catalog.dataset_names[0]}|{model}",
        RANGE_END_TAG: f"{catalog.dataset_names[-1]}|{model}",
    }
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        job_run = instance.create_run_for_job(job, tags=tags)  # the snapshots, stored once
        planned = len(
            instance.all_logs(
                job_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            )
        )
        start = time.perf_counter()
        for _ in range(3):
            instance.create_run_for_job(job, tags=tags)
        print(json.dumps({"seconds": (time.perf_counter() - start) / 3, "planned": planned}))


def run_creation(project: Path, scratch: Path) -> dict[str, Any]:
    """Creating a night's run of 100 cells on ``make ui``'s instance, in fresh processes.

    ``run_create_s``: the plan written at once; ``run_create_one_by_one_s``: event by event.
    """
    from eval_pipeline.defs.event_log import BATCH_ENV, BATCH_SIZE

    out: dict[str, Any] = {}
    for name, batch in (("run_create_s", str(BATCH_SIZE)), ("run_create_one_by_one_s", "0")):
        home = scratch / f"{name}_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        done = subprocess.run(
            [sys.executable, "-m", "eval_pipeline_tests.bench.scale", "_run_create"]
            + [str(project), str(home)],
            env=_env(DAGSTER_HOME=str(home), **{BATCH_ENV: batch}),
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
        out[name] = round(found["seconds"], 3)
        out["run_create_planned_events"] = found["planned"]
    out["run_create_speedup"] = round(out["run_create_one_by_one_s"] / out["run_create_s"], 1)
    return out


def leaderboard(project: Path, store_root: Path) -> dict[str, Any]:
    models = datasets = grid_size()
    written_s = write_aggregates(store_root, models, datasets)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "eval_pipeline_tests.bench.scale",
            "_report",
            str(project),
            str(store_root),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if not report["ok"]:
        raise RuntimeError(f"reporting_job failed:\n{out.stderr[-4000:]}")
    return {
        "aggregates_written_s": round(written_s, 1),
        "leaderboard_s": round(report["seconds"], 2),
        "leaderboard_rss_mb": round(report["rss_mb"]),
        "reporting_steps_s": report["steps"],
        # What the leaderboard's own computation costs, without the HTML plots.
        "leaderboard_table_s": round(report["table_s"], 2),
        "leaderboard_table_rss_mb": round(report["table_rss_mb"]),
        "reporting_metadata_chars": report["metadata_chars"],
    }


def single_partition(project: Path, scratch: Path) -> dict[str, Any]:
    """``eval-pipeline run`` of one partition on every sample, the whole command.

    Twice, on two partitions (nothing cached for either): the first run also creates the
    SQLite instance under a fresh ``DAGSTER_HOME``; the second is the usual case.
    """
    home, store = scratch / "cli_home", scratch / "cli_store"
    home.mkdir()
    out: dict[str, Any] = {}
    for name, model, dataset in (
        ("single_partition_first_s", "m000", "qa-000"),
        ("single_partition_s", "m001", "qa-001"),
    ):
        cmd = [
            str(Path(sys.executable).parent / "eval-pipeline"),
            "--root",
            str(project),
            "--store",
            str(store),
            "run",
            "--model",
            model,
            "--dataset",
            dataset,
            "--full",
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=_env(DAGSTER_HOME=str(home)), capture_output=True, text=True)
        out[name] = round(time.perf_counter() - start, 2)
        if done.returncode != 0:
            raise RuntimeError(f"eval-pipeline run failed:\n{done.stderr[-4000:]}")
        out[name.replace("_s", "_log")] = [
            line for line in done.stderr.splitlines() if line.startswith("== ")
        ]
    return out


GRID_MODELS = """
{ assetNodeOrError(assetKey: {path: ["generations"]}) {
    ... on AssetNode { partitionKeysByDimension { name partitionKeys } } } }
"""


def _served_models(url: str) -> int:
    from eval_pipeline_tests.opsupport import graphql

    node = graphql(url, GRID_MODELS)["assetNodeOrError"]
    return next(
        len(d["partitionKeys"]) for d in node["partitionKeysByDimension"] if d["name"] == "model"
    )


def _add_model(project: Path, slug: str) -> None:
    models = yaml.safe_load((project / "models.yaml").read_text())
    models["models"].append({**models["models"][0], "slug": slug, "model_id": f"fake/{slug}"})
    (project / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))


def _remove_model(project: Path, slug: str) -> None:
    models = yaml.safe_load((project / "models.yaml").read_text())
    models["models"] = [m for m in models["models"] if m["slug"] != slug]
    (project / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))


def catalog_reload(project: Path, scratch: Path) -> dict[str, Any]:
    """A model added while the webserver runs, and the reload ``catalog_sensor`` asks for.

    ``webserver_start_s``: ``dagster-webserver`` up with the code location loaded (its code
    server loads the definitions); ``catalog_reload_s``: the ``reloadRepositoryLocation``
    call, from the request until the webserver answers with the new location loaded (it
    answers once the new code server serves the new grid, checked right after).
    """
    from eval_pipeline.resources.webserver import WebserverResource
    from eval_pipeline_tests.opsupport import webserver

    home = scratch / "reload_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAEMON_INSTANCE)
    start = time.perf_counter()
    with webserver(home, project, scratch / "reload_webserver.log", env=_env()) as url:
        started = time.perf_counter() - start
        before = _served_models(url)
        _add_model(project, "new-model")
        try:
            result = WebserverResource(url=url).reload_location("eval_pipeline")
            after = _served_models(url)
        finally:
            _remove_model(project, "new-model")
    if not result.ok:
        raise RuntimeError(f"reload failed: {result.error}")
    return {
        "webserver_start_s": round(started, 2),
        "catalog_reload_s": round(result.seconds, 2),
        "catalog_reload_models": [before, after],
    }


DAEMON_INSTANCE = """\
# Runs the schedule requests stay queued: nothing is launched.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 0
telemetry:
  enabled: false
"""


def _start_daemon(scratch: Path, env: dict[str, str], log_name: str) -> tuple[Any, Any]:
    """``dagster-daemon run`` on ``scratch/workspace.yaml``; its open log and its process."""
    log = (scratch / log_name).open("w")
    daemon = processes.start(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=scratch,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return log, daemon


def daemon_tick(project: Path, scratch: Path, timeout_s: float = 240) -> dict[str, Any]:
    """A real ``dagster-daemon`` ticking the nightly schedule (every minute) on the grid.

    The instance (SQLite) holds a successful suite run of every partition, so the tick
    requests the 1% with changed inputs; the run queue launches nothing. Returns the
    tick's status and duration as the daemon recorded them.
    """
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from eval_pipeline.catalog import load_catalog

    home = scratch / "daemon_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAEMON_INSTANCE)
    (scratch / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: eval_pipeline.definitions\n"
    )
    catalog = load_catalog(str(project), load_rows=False)
    keys = [f"{d}|{m}" for d in catalog.dataset_names for m in catalog.model_slugs]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        seeded = seed_suite_history(instance, catalog, keys, time.time())
    env = _env(
        DAGSTER_HOME=str(home),
        EVAL_PIPELINE_ROOT=str(project),
        EVAL_PIPELINE_STORE=str(scratch / "daemon_store"),
        EVAL_PIPELINE_AUTOMATION="on",
        EVAL_PIPELINE_NIGHTLY_CRON="* * * * *",
    )
    log, daemon = _start_daemon(scratch, env, "daemon.log")
    ticks: list[Any] = []
    start = time.perf_counter()
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            while time.perf_counter() - start < timeout_s and not ticks:
                time.sleep(5)
                for state in instance.all_instigator_state():
                    if state.instigator_name != SCHEDULE:
                        continue
                    ticks = [
                        t
                        for t in instance.get_ticks(state.instigator_origin_id, state.selector_id)
                        if t.status.value != "STARTED"
                    ]
            queued = instance.get_runs_count(
                dg.RunsFilter(
                    job_name="regression_suite_job", statuses=[dg.DagsterRunStatus.QUEUED]
                )
            )
    finally:
        processes.stop(daemon, timeout_s=30)
        log.close()
    text = (scratch / "daemon.log").read_text()
    if not ticks:
        raise RuntimeError(f"no schedule tick within {timeout_s:.0f}s:\n{text[-3000:]}")
    tick = ticks[-1]
    # The daemon's own lines about the schedule: when it called the code server, when the
    # evaluation came back, and the runs it then created (the call has the 60 s deadline;
    # creating the runs does not).
    lines = [
        line[:200]
        for line in text.splitlines()
        if SCHEDULE in line or "Creating new run" in line or "run requests" in line
    ]
    return {
        "daemon_log": lines[:6] + (["…"] if len(lines) > 12 else []) + lines[-6:],
        "daemon_tick_status": tick.status.value,
        "daemon_tick_s": round((tick.end_timestamp or tick.timestamp) - tick.timestamp, 2),
        "daemon_tick_runs_queued": queued,
        "daemon_tick_expected": seeded["expected_due"],
        "daemon_deadline_exceeded": "DEADLINE_EXCEEDED" in text,
        "daemon_tick_error": tick.error.message[:500] if tick.error else None,
    }


# The instances ``first_night_launch`` runs the first night on: ``make ui``'s own
# (dagster.yaml: the run queue of 4 and the default launcher, every run executed), and
# two with a launcher that executes nothing (bench/_instant_launcher.py): the same queue,
# and the queue's limit lifted (every run dequeued at once).
LAUNCHER = """
run_launcher:
  module: eval_pipeline_tests.bench._instant_launcher
  class: InstantRunLauncher
"""
LAUNCH_SETUPS = ("ui", "ui_queue", "unqueued")
# How long the first night under `make ui` is watched after its tick: the runs execute,
# four at a time, and the night's last run starts when the 96 before it have finished.
LAUNCH_WINDOW_ENV = "EVAL_PIPELINE_SCALE_LAUNCH_WINDOW_S"
# Which setups to run (comma-separated; all three by default).
SETUPS_ENV = "EVAL_PIPELINE_SCALE_LAUNCH_SETUPS"
PLANNED_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def launch_instance(setup: str) -> str:
    """The dagster.yaml of ``setup``: the repository's, as ``make ui`` copies it, or changed."""
    text = (REPO / "dagster.yaml").read_text()
    if setup == "ui":
        return text
    config = yaml.safe_load(text)
    if setup == "unqueued":
        # No limit on runs, and none from the pools: with op granularity the queue holds
        # back a run whose first steps would wait for a pool's slots (2 of eval_generation:
        # two runs per dequeue).
        config["concurrency"]["runs"]["max_concurrent_runs"] = -1
        config["concurrency"]["pools"]["op_granularity_run_buffer"] = 1_000_000
    return yaml.safe_dump(config, sort_keys=False) + LAUNCHER


def first_night_launch(
    project: Path, scratch: Path, setup: str, timeout_s: float = 1800
) -> dict[str, Any]:
    """The first night on an empty instance: a real ``dagster-daemon``, from tick to runs.

    The daemon ticks the nightly schedule (every minute here) with the instance of
    ``setup`` (:func:`launch_instance`). From the tick's timestamp as the daemon recorded
    it (the scheduled time; the evaluation starts within a second or two of it), per run
    of the tick: when the daemon dequeued and launched it (the ``RUN_STARTING`` event,
    status STARTING) and when it started (``RUN_START``, status STARTED: with ``make
    ui``'s launcher, its run worker began executing). ``<setup>_launched_s`` and
    ``<setup>_started_s`` are the times until the last run got there, None when not every
    run did within the watch (``ui``: ``EVAL_PIPELINE_SCALE_LAUNCH_WINDOW_S`` after the
    tick, 300 s by default; the others until ``timeout_s``). The daemon creates the tick's
    runs one by one and ends the tick after the last: ``<setup>_runs`` is None when the
    watch ended first (``<setup>_runs_created_in_watch`` says how far it got).
    """
    import dagster as dg
    from dagster._core.events import DagsterEventType
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

    from eval_pipeline.defs.automation import AUTOMATION_SENSOR
    from eval_pipeline.defs.event_log import BATCH_ENV, BATCH_SIZE

    home = scratch / f"launch_{setup}_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(launch_instance(setup))
    (scratch / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: eval_pipeline.definitions\n"
        "      location_name: eval_pipeline\n"
    )
    window_s = float(os.environ.get(LAUNCH_WINDOW_ENV, "300")) if setup == "ui" else timeout_s
    env = _env(
        DAGSTER_HOME=str(home),
        EVAL_PIPELINE_ROOT=str(project),
        EVAL_PIPELINE_STORE=str(scratch / f"launch_{setup}_store"),
        EVAL_PIPELINE_AUTOMATION="on",
        EVAL_PIPELINE_NIGHTLY_CRON="* * * * *",
        # As scripts/ui.sh starts the daemon: a run's planned partitions in one write.
        **{BATCH_ENV: os.environ.get(BATCH_ENV, str(BATCH_SIZE))},
    )
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        # Create the SQLite storages before the daemon does, not at the same time.
        instance.all_instigator_state()
        instance.get_runs_count()
    log, daemon = _start_daemon(scratch, env, f"launch_{setup}.log")
    kinds = {
        DagsterEventType.RUN_STARTING: "launched",
        DagsterEventType.RUN_START: "started",
        DagsterEventType.RUN_SUCCESS: "ended",
        DagsterEventType.RUN_FAILURE: "ended",
        DagsterEventType.RUN_CANCELED: "ended",
    }
    start = time.perf_counter()
    tick = None
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            while tick is None:
                if time.perf_counter() - start > timeout_s:
                    raise RuntimeError(f"{setup}: no schedule tick within {timeout_s:.0f}s")
                time.sleep(1)
                ticks = _sensor_ticks(instance, SCHEDULE)
                tick = min(ticks, key=lambda t: t.timestamp) if ticks else None
            # The tick's runs as the daemon creates them (the tick ends after the last). Later
            # ticks request the partitions of canceled runs again: left out.
            scheduled = dt.datetime.fromtimestamp(tick.timestamp, dt.UTC).isoformat()
            ours = dg.RunsFilter(
                tags={"dagster/schedule_name": SCHEDULE, SCHEDULED_EXECUTION_TIME_TAG: scheduled}
            )
            while time.time() - tick.timestamp < window_s:
                tick = next(
                    t for t in _sensor_ticks(instance, SCHEDULE) if t.tick_id == tick.tick_id
                )
                records = instance.get_run_records(ours)
                if tick.end_timestamp and all(
                    r.start_time or r.dagster_run.is_finished for r in records
                ):
                    break
                time.sleep(1)
            records = instance.get_run_records(ours)
            run_ids = [r.dagster_run.run_id for r in records]
            times: dict[str, dict[str, float]] = {k: {} for k in set(kinds.values())}
            for run_id in run_ids:
                for entry in instance.all_logs(run_id, of_type=set(kinds)):
                    if entry.dagster_event is not None:
                        kind = kinds[entry.dagster_event.event_type]
                        times[kind][run_id] = entry.timestamp - tick.timestamp
            statuses = [r.dagster_run.status.value for r in records]
            # Nothing changes on the first night, so a run the automation sensor requests
            # repeats cells the night's runs evaluate (it should request none).
            automation = instance.get_run_records(
                dg.RunsFilter(tags={"dagster/sensor_name": AUTOMATION_SENSOR})
            )
    finally:
        processes.stop(daemon, timeout_s=30)
        log.close()
    text = (scratch / f"launch_{setup}.log").read_text()
    if tick.status.value not in ("SUCCESS", "STARTED"):
        raise RuntimeError(f"{setup}: tick {tick.status.value}: {tick.error}\n{text[-3000:]}")
    # Every run of the tick, once the tick has ended (it creates them one by one).
    complete = tick.end_timestamp is not None and len(run_ids) == len(tick.run_ids)

    def until_all(kind: str) -> float | None:
        found = times[kind]
        return round(max(found.values()), 1) if complete and len(found) == len(run_ids) else None

    started = sorted(times["started"].values())
    durations = [times["ended"][r] - times["started"][r] for r in times["ended"]]
    out: dict[str, Any] = {
        f"{setup}_tick_status": tick.status.value,
        f"{setup}_tick_s": round(tick.end_timestamp - tick.timestamp, 2)
        if tick.end_timestamp
        else None,
        f"{setup}_runs": len(tick.run_ids) if tick.end_timestamp else None,
        f"{setup}_runs_created_in_watch": len(run_ids),
        f"{setup}_launched_s": until_all("launched"),
        f"{setup}_started_s": until_all("started"),
        f"{setup}_first_started_s": round(started[0], 1) if started else None,
        f"{setup}_watched_s": round(window_s, 0),
        f"{setup}_launched_in_watch": len(times["launched"]),
        f"{setup}_started_in_watch": len(started),
        f"{setup}_statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        f"{setup}_automation_runs": len(automation),
    }
    if setup == "ui":
        out["ui_run_s"] = _spread(durations)
        # The first night requests a run per model: the grid's side.
        total = len(tick.run_ids) if tick.end_timestamp else grid_size()
        out["ui_started_s_estimate"] = _estimate_all_started(started, total)
    return out


def _spread(values: list[float]) -> dict[str, Any]:
    """Count, min, median and max of ``values`` (seconds)."""
    if not values:
        return {"n": 0}
    values = sorted(values)
    return {
        "n": len(values),
        "min": round(values[0], 1),
        "median": round(values[len(values) // 2], 1),
        "max": round(values[-1], 1),
    }


def _estimate_all_started(started: list[float], runs: int) -> float | None:
    """When the last of ``runs`` would start, at the pace the watched runs started.

    The first wave starts together (the queue's limit); each later start waits for a run
    to end, so the starts after the first wave come at a steady pace.
    """
    if not started or len(started) >= runs:
        return round(started[-1], 1) if started else None
    wave = sum(1 for s in started if s - started[0] < 10)
    later = len(started) - wave
    if later < 2:
        return None
    pace = (started[-1] - started[wave - 1]) / later
    return round(started[wave - 1] + pace * (runs - wave), 0)


def first_night_launches(project: Path, scratch: Path) -> dict[str, Any]:
    """:func:`first_night_launch` on each setup; the figures ``first_night_launch_s`` reads.

    ``first_night_launch_s`` is the time until every run has been dequeued and launched
    with the queue's limit lifted (``unqueued``): the daemon's own way from the tick to
    the night's runs, which the 60 s goal is about. ``make ui``'s queue (``ui_queue``:
    four runs at a time, a dequeue every 5 s, runs that take no time) and ``make ui``
    itself (``ui``: the runs executed, four at a time) are reported beside it.
    """
    from eval_pipeline.defs.event_log import BATCH_ENV, BATCH_SIZE

    chosen = os.environ.get(SETUPS_ENV, ",".join(LAUNCH_SETUPS)).split(",")
    out: dict[str, Any] = {
        # Dagster writes a planned event per asset and partition of a run over a range
        # (400 for a run of 100 cells) unless this is set (docs/operations.md).
        PLANNED_ENV: os.environ.get(PLANNED_ENV, ""),
        BATCH_ENV: os.environ.get(BATCH_ENV, str(BATCH_SIZE)),
    }
    for setup in LAUNCH_SETUPS:
        if setup in chosen:
            out.update(first_night_launch(project, scratch, setup))
    for key, value in (
        ("first_night_runs", "unqueued_runs"),
        ("first_night_launch_s", "unqueued_launched_s"),
        ("first_night_launch_ui_queue_s", "ui_queue_started_s"),
        ("first_night_launch_ui_s", "ui_started_s"),
        ("first_night_automation_runs", "ui_automation_runs"),
    ):
        if value in out:
            out[key] = out[value]
    return out


def dataset_tables(scratch: Path) -> dict[str, Any]:
    """The per-dataset tables' bookkeeping in one run over every model of one dataset.

    Two grid-partitioned steps stand in for the rest of ``generations``: one writes and
    records the tables per grid cell (how they were partitioned before), the other runs
    ``refresh_dataset_tables`` (what ``generations`` does first now).
    """
    import dagster as dg

    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.defs.datasets import TABLES, build_dataset_assets, refresh_dataset_tables
    from eval_pipeline.defs.dispatch import materialize_each
    from eval_pipeline.defs.partitions import (
        current_partitions,
        dataset_partitions,
        grid_partitions,
    )
    from eval_pipeline.resources import CatalogResource, StoreResource

    models = int(os.environ.get("EVAL_PIPELINE_SCALE_MODELS", "1000"))
    project = make_grid_project(scratch / "datasets_project", models, 1)
    grid = grid_partitions(load_catalog(str(project), load_rows=False))
    single = dg.BackfillPolicy.single_run()
    # Resources by key, not by annotation: this module's annotations are strings.
    uses = {"catalog", "store"}

    def per_cell(table):
        @dg.asset(
            name=f"grid_{table.asset}",
            partitions_def=grid,
            backfill_policy=single,
            required_resource_keys=uses,
        )
        def _asset(context) -> None:
            built: dict[str, dict] = {}
            catalog, store = context.resources.catalog.load(), context.resources.store.get()

            def build(key) -> dict:
                if key.dataset not in built:
                    report = table.build(catalog, store, key.dataset)
                    built[key.dataset] = {"path": str(report.path), table.version: report.version}
                return built[key.dataset]

            materialize_each(context, build)

        return _asset

    refresh_s: list[float] = []

    @dg.asset(partitions_def=grid, backfill_policy=single, required_resource_keys=uses)
    def refresh(context) -> None:
        keys = current_partitions(context)
        catalog, store = context.resources.catalog.load(), context.resources.store.get()
        start = time.perf_counter()
        refresh_dataset_tables(context, catalog, store, (key.dataset for key in keys))
        refresh_s.append(time.perf_counter() - start)

    grid_assets = [per_cell(t) for t in TABLES]
    defs = dg.Definitions(
        assets=[*build_dataset_assets(dataset_partitions(grid)), *grid_assets, refresh],
        jobs=[
            dg.define_asset_job("grid_tables", selection=[a.key for a in grid_assets]),
            dg.define_asset_job("refresh", selection=[refresh.key]),
        ],
        executor=dg.in_process_executor,
        resources={
            "catalog": CatalogResource(root=str(project)),
            "store": StoreResource(root=str(scratch / "datasets_store")),
        },
    )
    tags = {
        "dagster/asset_partition_range_start": "qa-000|m000",
        "dagster/asset_partition_range_end": f"qa-000|m{models - 1:03d}",
    }
    table_keys = {dg.AssetKey(t.asset) for t in TABLES} | {a.key for a in grid_assets}
    out: dict[str, Any] = {"grid": f"{models} models x 1 dataset"}
    with dg.instance_for_test() as instance:
        for name, job in (
            ("dataset_tables_grid", "grid_tables"),
            ("dataset_tables_first", "refresh"),
            ("dataset_tables_rerun", "refresh"),
        ):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags)
            assert result.success, name
            # Before: the two steps, all of them bookkeeping. Now: the refresh call inside
            # the step (the step's own materializations are those of `generations`).
            seconds = refresh_s.pop() if refresh_s else _steps_s(instance, result.run_id)
            recorded = [
                e for e in result.get_asset_materialization_events() if e.asset_key in table_keys
            ]
            out[f"{name}_s"] = round(seconds, 2)
            out[f"{name}_materializations"] = len(recorded)
    return out


def _steps_s(instance, run_id: str) -> float:
    """Seconds the run's steps took, summed."""
    started: dict[str, float] = {}
    seconds = 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            seconds += entry.timestamp - started[event.step_key]
    return seconds


def _sensor_ticks(instance, name: str) -> list[Any]:
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


def daemon_reload(
    project: Path, scratch: Path, dev: bool, timeout_s: float = 300
) -> dict[str, Any]:
    """Whether and when the daemon's ``catalog_sensor`` sees a model added to the catalog.

    The webserver and the daemon run as ``make ui`` starts them (each with a code server of
    its own), or with ``dev`` under ``dagster dev`` (code servers shared by both). After the
    sensor's first tick a model is added; the ticks that follow are reported with their
    time after the change (a tick every 60 s), until one requests the new partitions.
    """
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from eval_pipeline_tests.opsupport import free_port, location_status, stop_group

    mode = "dev" if dev else "ui"
    home = scratch / f"{mode}_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAEMON_INSTANCE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(
        DAGSTER_HOME=str(home),
        EVAL_PIPELINE_ROOT=str(project),
        EVAL_PIPELINE_STORE=str(scratch / f"{mode}_store"),
        EVAL_PIPELINE_AUTOMATION="on",
        EVAL_PIPELINE_UI_URL=url,
    )
    bin_dir = Path(sys.executable).parent
    serve = ["-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    commands = (
        [[str(bin_dir / "dagster"), "dev", *serve]]
        if dev
        else [
            [str(bin_dir / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            [str(bin_dir / "dagster-webserver"), *serve],
        ]
    )
    log = (scratch / f"{mode}.log").open("w")
    procs = [
        processes.start(c, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
        for c in commands
    ]
    out: dict[str, Any] = {}
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            start = time.perf_counter()

            def wait(what: str, done) -> None:
                while not done():
                    if time.perf_counter() - start > timeout_s:
                        raise RuntimeError(f"{mode}: {what} not within {timeout_s:.0f}s")
                    time.sleep(1)

            def up() -> bool:
                try:
                    return location_status(url) == "LOADED"
                except Exception:
                    return False

            wait("the webserver", up)

            def ticks(since: float) -> list[Any]:
                done = [
                    t
                    for t in _sensor_ticks(instance, "catalog_sensor")
                    if t.timestamp > since and t.end_timestamp
                ]
                return sorted(done, key=lambda t: t.timestamp)

            wait("the first catalog_sensor tick", lambda: ticks(0))
            _add_model(project, "new-model")
            changed = time.time()
            after = lambda: ticks(changed)  # noqa: E731
            wait("a tick requesting the new partitions", lambda: any(t.run_ids for t in after()))
            out[f"{mode}_ticks_after_change"] = [
                {
                    "at_s": round(t.timestamp - changed, 1),
                    "took_s": round(t.end_timestamp - t.timestamp, 1),
                    "status": t.status.value,
                    "runs": len(t.run_ids),
                    "skip": (t.skip_reason or "")[:300],
                }
                for t in after()
            ]
            requested = next(t for t in after() if t.run_ids)
            out[f"{mode}_new_partitions_requested_after_s"] = round(
                requested.timestamp - changed, 1
            )
            out[f"{mode}_webserver_models"] = _served_models(url)
    finally:
        for proc in procs:
            stop_group(proc)
        log.close()
    return out


@contextmanager
def postgres_home(scratch: Path):
    """A DAGSTER_HOME on a throwaway PostgreSQL database (dropped afterwards)."""
    import psycopg2

    admin = psycopg2.connect(
        host=PG["DAGSTER_PG_HOST"],
        port=int(PG["DAGSTER_PG_PORT"]),
        user=PG["DAGSTER_PG_USER"],
        password=PG["DAGSTER_PG_PASSWORD"],
        dbname="postgres",
        connect_timeout=5,
    )
    admin.autocommit = True
    name = f"eval_pipeline_scale_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    home = scratch / "pg_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    saved = {k: os.environ.get(k) for k in [*PG, "DAGSTER_PG_DB"]}
    os.environ.update({**PG, "DAGSTER_PG_DB": name})
    try:
        yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def run(
    postgres: bool = False, daemon: bool = False, datasets: bool = False, reload: bool = False
) -> dict[str, Any]:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    if datasets:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            return dataset_tables(Path(tmp))
    n = grid_size()
    result: dict[str, Any] = {"grid": f"{n} models x {n} datasets", "bounds": BOUNDS}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        scratch = Path(tmp)
        project = make_grid_project(scratch / "project", n, n)
        home = scratch / "home"
        home.mkdir()
        if reload:
            result.update(daemon_reload(project, scratch, dev=False))
            _remove_model(project, "new-model")
            result.update(daemon_reload(project, scratch, dev=True))
        elif daemon:
            result.update(daemon_tick(project, scratch))
            result.update(run_creation(project, scratch))
            result.update(first_night_launches(project, scratch))
        elif postgres:
            with postgres_home(scratch) as pg_home:
                with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(pg_home))) as instance:
                    result.update(schedule_ticks(project, instance, prefix="pg_"))
            result["schedule_tick_pg_s"] = result.pop("pg_schedule_tick_s")
        else:
            result.update(definitions_load(project, home))
            result.update(catalog_reload(project, scratch))
            with dg.instance_for_test(temp_dir=str(home)) as instance:
                result.update(schedule_ticks(project, instance))
                result.update(versions_tick(project, instance))
            result.update(single_partition(project, scratch))
            result.update(leaderboard(project, scratch / "store"))
    result["within_bounds"] = {
        k: result[k] <= bound
        for k, bound in BOUNDS.items()
        if isinstance(result.get(k), float | int)
    }
    if "first_night_runs" in result:
        result["within_bounds"]["first_night_runs"] = result["first_night_runs"] <= n
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["_report"]:
        _report_main(argv[1], argv[2])
        return 0
    if argv[:1] == ["_run_create"]:
        _run_create_main(argv[1], argv[2])
        return 0
    postgres, daemon = "--postgres" in argv, "--daemon" in argv
    datasets, reload = "--datasets" in argv, "--reload" in argv
    name = (
        "scale_datasets"
        if datasets
        else "scale_reload"
        if reload
        else "scale_daemon"
        if daemon
        else "scale_pg"
        if postgres
        else "scale"
    )
    start = time.perf_counter()
    result = run(postgres=postgres, daemon=daemon, datasets=datasets, reload=reload)
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    path = write_result(name, result)
    shown = {
        k: v
        for k, v in result.items()
        if k.endswith(("_s", "_mb", "_materializations", "_change", "_runs"))
        or k == "within_bounds"
        or k.startswith("daemon")
    }
    print(json.dumps(shown, indent=2), f"-> {path}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
