"""The project's own command line: ``eval-pipeline <command>``.

``run`` materializes the evaluation job for every selected partition in this process
(so a local model loads once), then the reporting job once, records the runs in the
Dagster instance under ``$DAGSTER_HOME`` and prints the leaderboard. ``leaderboard`` prints the stored one.
``results``, ``samples`` and ``costs`` read the store (and the instance); ``compare`` runs
the paired regression tests between two runs or baselines; ``history`` lists a
partition's kept runs; ``report`` writes the static HTML results explorer; ``baseline
pin`` pins one;
``label`` collects human ratings for judge calibration and ``calibrations`` prints the
stored calibrations. ``runs mark-dead`` marks runs whose process was killed (still
``STARTED`` in the run history) as failed; ``run`` does that first for this host's runs.
``train --recipe R`` trains the LoRA adapter of a ``recipes.yaml`` recipe (or finds it
stored) and prints its folder, content hash, catalog slug and training report.
``doctor`` prints the preflight of the whole catalog: what this machine lacks to run each
model on each dataset, and the fix; ``run`` checks its own partitions the same way first
and refuses to start when anything is missing (``--no-preflight`` skips that).

Exit codes: 0 success (``compare``: no regression; ``doctor``: no problem), 1 a failed run,
(``compare``) a regression or (``doctor``) a problem found, 2 a usage or input error
(unknown model, missing baseline, or ``run`` refused by its preflight: nothing ran), 3
nothing stored that matches the request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Nothing stored matches the request (not materialized yet, or filters match nothing).
EXIT_NO_DATA = 3
EXIT_CODES_HELP = (
    "exit codes: 0 ok; 1 failed run, a regression (compare) or a problem found (doctor); "
    "2 usage or input error, or run refused by its preflight (nothing ran); "
    "3 no stored data matches"
)

DEFAULT_LIMIT = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval-pipeline",
        description="Evaluate LLMs as Dagster assets; results as Parquet.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--root", help="project root with models.yaml, datasets/, prompts/")
    parser.add_argument(
        "--store", help="Parquet store root (default: $EVAL_PIPELINE_STORE or <root>/.eval_store)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="materialize the evaluation job for model x dataset partitions, print the leaderboard",
    )
    run.add_argument("--model", action="append", help="model slug (repeatable; default: all)")
    run.add_argument("--dataset", action="append", help="dataset name (repeatable; default: all)")
    run.add_argument(
        "--suite",
        action="append",
        help="every dataset whose spec says suite: SUITE, e.g. bigbench (repeatable; "
        "adds to --dataset)",
    )
    limit = run.add_mutually_exclusive_group()
    limit.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"samples per dataset (default {DEFAULT_LIMIT})",
    )
    limit.add_argument("--full", action="store_true", help="evaluate every sample")
    run.add_argument("--no-cache", action="store_true", help="ignore cached responses")
    run.add_argument(
        "--no-preflight",
        action="store_true",
        help="start without first checking what the partitions need (data, sandbox, API "
        "keys, packages, judges); see eval-pipeline doctor",
    )
    run.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    run.add_argument("--log-level", default="INFO", help="Dagster console log level (default INFO)")
    run.add_argument(
        "--budget",
        type=float,
        metavar="USD",
        help=(
            "spend budget of the whole invocation in US dollars, over every partition and "
            "judge call (API models; no request is sent that could cross it)"
        ),
    )

    doctor = sub.add_parser(
        "doctor",
        help="check what this machine lacks to run every model on every dataset, with fixes",
        description=(
            "The preflight of the whole catalog (every model x dataset, and the judge models "
            "of judged datasets): each dataset's data source, bubblewrap for code-execution "
            "scorers, API key variables, the packages and model files each provider needs, "
            "sbatch for SLURM models. One line per problem with the command or setting that "
            "fixes it; not-applicable cells are listed as notes. `eval-pipeline run` checks "
            "its own partitions the same way before any model call."
        ),
        epilog=EXIT_CODES_HELP,
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    lm_eval = sub.add_parser(
        "lm-eval",
        help="find lm-evaluation-harness tasks that run here, and add one as a dataset",
        description=(
            "lm-eval's tasks run by name as datasets with `loader: lm_eval` (docs/benchmarks.md). "
            "`tasks` lists the tasks, groups and tags of the installed lm-eval (`--local`: "
            "with whether their data is on this machine); `add` writes "
            "datasets/<name>/dataset.yaml for one; `index` builds the task index (make does)."
        ),
        epilog=EXIT_CODES_HELP,
    )
    lsub = lm_eval.add_subparsers(dest="lm_eval_command", required=True)
    tasks = lsub.add_parser("tasks", help="list lm-eval tasks, groups and tags by name")
    tasks.add_argument("patterns", nargs="*", default=["*"], help="glob patterns (default: all)")
    tasks.add_argument(
        "--local",
        action="store_true",
        help="check each for local data: `ok` runs here with no network, else why not",
    )
    tasks.add_argument("--json", action="store_true", help="print JSON")
    add = lsub.add_parser("add", help="write datasets/<name>/dataset.yaml for an lm-eval task")
    add.add_argument("task", help="an lm-eval task or group name (e.g. arc_easy, mmlu)")
    add.add_argument("--name", help="the dataset's slug (default: the task name as a slug)")
    add.add_argument("--num-fewshot", type=int, help="lm-eval's num_fewshot")
    add.add_argument("--primary-metric", help="the headline metric (default: the task's first)")
    add.add_argument("--suite", help="a suite to put the dataset in")
    lsub.add_parser("index", help="build the index of lm-eval's tasks (about 7 s; make does)")

    board = sub.add_parser("leaderboard", help="print the stored leaderboard")
    board.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    _add_results_commands(sub)
    _add_runs_commands(sub)
    _add_metrics_commands(sub)
    _add_train_commands(sub)
    return parser


def _add_train_commands(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train a recipe's LoRA adapter (or find it stored); print its path, hash and report",
    )
    train.add_argument("--recipe", required=True, help="recipe name in recipes.yaml")
    train.add_argument(
        "--force", action="store_true", help="train even when the store has this recipe's adapter"
    )
    train.add_argument("--json", action="store_true", help="print the adapter record as JSON")


def _add_metrics_commands(sub) -> None:
    metrics = sub.add_parser(
        "metrics",
        help="Prometheus metrics of the run history and the stored results",
        description=(
            "Runs by job and status and partition durations (from the Dagster instance under "
            "$DAGSTER_HOME), request latency and errors by provider, tokens and cost by "
            "provider and model, cache hits, metric means, flagged regressions and suspicious "
            "sandbox programs (from the store). See docs/operations.md for a scrape config "
            "and alert rules."
        ),
        epilog=EXIT_CODES_HELP,
    )
    msub = metrics.add_subparsers(dest="metrics_command", required=True)
    serve = msub.add_parser("serve", help="serve /metrics over HTTP until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    write = msub.add_parser(
        "write", help="write the metrics once, in the node exporter's textfile format"
    )
    write.add_argument("file", help="the .prom file to write (atomically)")


def _add_runs_commands(sub) -> None:
    runs = sub.add_parser("runs", help="maintain the Dagster run history under $DAGSTER_HOME")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    dead = rsub.add_parser(
        "mark-dead",
        help="mark runs still STARTED whose process is gone as FAILURE",
        description=(
            "A run whose process was killed (SIGKILL, out of memory, a closed terminal) stays "
            "STARTED in the run history for ever. This marks each STARTED run whose process "
            "no longer exists on this machine as FAILURE. Runs tagged with another host are "
            "left alone; untagged runs count as this machine's when the instance keeps its "
            "runs in SQLite (a local DAGSTER_HOME), or with --assume-local."
        ),
        epilog=EXIT_CODES_HELP,
    )
    dead.add_argument(
        "--dry-run", action="store_true", help="list the runs that would be marked; change nothing"
    )
    dead.add_argument(
        "--assume-local",
        action="store_true",
        help="treat runs without a host tag as this machine's (shared PostgreSQL instance)",
    )


def _add_results_commands(sub) -> None:
    results = sub.add_parser(
        "results",
        help="table of aggregates (mean, stderr, 95%% CI per metric); per slice with --tag",
        epilog=EXIT_CODES_HELP,
    )
    results.add_argument("--model", action="append", help="model slug (repeatable)")
    results.add_argument("--dataset", action="append", help="dataset name (repeatable)")
    results.add_argument(
        "--tag", action="append", help="per-slice results for this tag (repeatable)"
    )
    results.add_argument("--metric", action="append", help="metric name (repeatable)")
    results.add_argument("--json", action="store_true", help="print JSON instead of Markdown")

    compare = sub.add_parser(
        "compare",
        help="paired per-sample comparison of run B against run A; exit 1 on a regression",
        description=(
            "Compare B (current) against A (baseline) per model x dataset x metric with paired "
            "tests: McNemar (mid-p) for pass/fail metrics, paired bootstrap otherwise. A or B: "
            "baseline:<name> (or a name under baselines/); a kept run of the store: latest, "
            "previous (each partition's run before its latest), run:<id> (a run id or a "
            "unique prefix), @<ISO date or time> (each partition's newest run by then); a "
            "store directory, a baseline folder, or a scores Parquet file."
        ),
        epilog=EXIT_CODES_HELP,
    )
    compare.add_argument("a", metavar="A", help="the baseline run")
    compare.add_argument("b", metavar="B", help="the current run")
    compare.add_argument(
        "--alpha", type=float, help="significance level (default: baseline's, else 0.05)"
    )
    compare.add_argument(
        "--threshold", type=float, help="smallest drop that counts (default: baseline's, else 0.02)"
    )
    compare.add_argument(
        "--exact", action="store_true", help="exact McNemar p-values instead of mid-p"
    )
    compare.add_argument("--model", action="append", help="compare only this model (repeatable)")
    compare.add_argument(
        "--dataset", action="append", help="compare only this dataset (repeatable)"
    )
    compare.add_argument("--json", action="store_true", help="print the report as JSON")
    compare.add_argument("--output", help="also write <OUTPUT>.md and <OUTPUT>.json")

    history = sub.add_parser(
        "history",
        help="a partition's primary metric over its kept runs, with 95%% CIs and cost",
        epilog=EXIT_CODES_HELP,
    )
    history.add_argument("--model", required=True, help="model slug")
    history.add_argument("--dataset", required=True, help="dataset name")
    history.add_argument("--metric", help="metric to show (default: the dataset's primary metric)")
    history.add_argument("--json", action="store_true", help="print JSON instead of Markdown")

    report = sub.add_parser(
        "report",
        help="write the static HTML results explorer; --open opens it in a browser",
        description=(
            "Writes <store>/reports/explorer/index.html: a leaderboard heatmap, per-sample "
            "drill-down, run-to-run diffs and trends, readable from the file system with no "
            "server (the reporting step writes the same after every run)."
        ),
        epilog=EXIT_CODES_HELP,
    )
    report.add_argument("--output", help="folder to write to (default: <store>/reports/explorer)")
    report.add_argument(
        "--open", action="store_true", dest="open_browser", help="open it in a web browser"
    )

    costs = sub.add_parser(
        "costs",
        help="spend by model and provider over a period (generation runs and judge calls)",
        epilog=EXIT_CODES_HELP,
    )
    costs.add_argument("--since", help="start, ISO date or time (default: all time)")
    costs.add_argument("--until", help="end, ISO date or time (default: now)")
    costs.add_argument(
        "--by",
        choices=["model", "provider", "partition"],
        default="model",
        help="group spend by (default: model)",
    )
    costs.add_argument("--json", action="store_true", help="print JSON instead of Markdown")

    samples = sub.add_parser(
        "samples",
        help="per-sample inputs, outputs and scores of one model x dataset",
        epilog=EXIT_CODES_HELP,
    )
    samples.add_argument("--model", required=True, help="model slug")
    samples.add_argument("--dataset", required=True, help="dataset name")
    samples.add_argument("--id", action="append", dest="ids", help="sample id (repeatable)")
    samples.add_argument("--metric", help="metric to filter on (with --below)")
    samples.add_argument(
        "--below", type=float, help="keep samples whose --metric is below this (failures: 1)"
    )
    samples.add_argument("--limit", type=int, default=20, help="rows to show (default 20; 0: all)")
    samples.add_argument("--json", action="store_true", help="print JSON instead of Markdown")

    calibrations = sub.add_parser(
        "calibrations",
        help="print the stored judge calibrations: labels, method, agreement before/after",
        epilog=EXIT_CODES_HELP,
    )
    calibrations.add_argument("--json", action="store_true", help="print JSON")

    label = sub.add_parser(
        "label",
        help="rate judge-calibration responses by hand (writes datasets/judge-labels/human.jsonl)",
        description=(
            "Shows each calibration response of a rubric with the rubric's anchors and asks "
            "for a 1-5 rating (s skips, q quits). Every rating is saved at once; a later "
            "session resumes where this one stopped. Once a rubric has human ratings, its "
            "judge calibration uses them instead of the rule-assigned labels."
        ),
        epilog=EXIT_CODES_HELP,
    )
    label.add_argument("--rubric", required=True, help="rubric to rate on (e.g. helpfulness)")
    label.add_argument("--rater", required=True, help="your name, a slug (e.g. alice)")
    label.add_argument("--limit", type=int, help="stop after this many ratings")

    baseline = sub.add_parser("baseline", help="pin the stored scores as a named baseline")
    bsub = baseline.add_subparsers(dest="baseline_command", required=True)
    pin = bsub.add_parser("pin", help="copy the store's scores into baselines/<name>/")
    pin.add_argument("name", help="baseline name (a slug)")
    pin.add_argument("--model", action="append", help="only this model (repeatable)")
    pin.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    pin.add_argument("--description", default="", help="what this baseline is")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from eval_pipeline.core.errors import EvalPipelineError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "leaderboard":
            return _leaderboard(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "metrics":
            return _metrics(args)
        handler = {
            "results": _results,
            "compare": _compare,
            "history": _history,
            "report": _report,
            "costs": _costs,
            "samples": _samples,
            "baseline": _baseline,
            "label": _label,
            "calibrations": _calibrations,
            "train": _train,
            "doctor": _doctor,
            "lm-eval": _lm_eval,
        }.get(args.command)
        if handler is not None:
            return handler(args)
    except (EvalPipelineError, KeyError, ValueError) as exc:
        print(f"eval-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


def _train(args) -> int:
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.storage import Store
    from eval_pipeline.training import adapter_slug, load_recipes, train_recipe

    root, store_root = _roots(args)
    catalog = load_catalog(root, load_rows=False)
    recipes = load_recipes(root, catalog)
    if args.recipe not in recipes:
        known = ", ".join(sorted(recipes)) or "none"
        print(
            f"eval-pipeline: error: unknown recipe {args.recipe!r} (known: {known})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    recipe = recipes[args.recipe]

    def step(done: int, steps: int, loss: float) -> None:
        print(f"step {done}/{steps} loss {loss:.4f}", file=sys.stderr, flush=True)

    adapter = train_recipe(catalog, Store(store_root), recipe, force=args.force, on_step=step)
    if args.json:
        print(adapter.to_json())
        return EXIT_OK
    report = adapter.report
    print(f"adapter: {adapter.path}")
    print(f"content hash: {adapter.content_hash}")
    print(f"model: {adapter_slug(recipe.base, recipe.name)}")
    print(f"trained now: {'no (stored, recipe unchanged)' if adapter.reused else 'yes'}")
    print(
        f"report: {report.steps} steps on {report.examples} examples, loss "
        f"{report.first_loss} -> {report.final_loss}, {report.wall_s:.1f} s, "
        f"{report.tokens_per_s:.1f} tokens/s, peak {report.peak_memory_gb:.2f} GB, "
        f"{report.device} ({report.quantization}, {report.optimizer})"
    )
    return EXIT_OK


def _metrics(args) -> int:
    import signal
    import threading

    import dagster as dg
    from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile

    from eval_pipeline.defs.metrics import InstanceCollector
    from eval_pipeline.operations import StoreCollector
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    _use_dagster_home(root, create=True)
    registry = CollectorRegistry()
    registry.register(StoreCollector(Store(store_root)))
    with dg.DagsterInstance.get() as instance:
        registry.register(InstanceCollector(instance))
        if args.metrics_command == "write":
            target = Path(args.file)
            target.parent.mkdir(parents=True, exist_ok=True)
            # prometheus_client writes a temporary file beside it and renames it.
            write_to_textfile(str(target), registry)
            print(f"eval-pipeline: metrics written to {target}", file=sys.stderr)
            return EXIT_OK
        # SIGTERM and Ctrl-C stop the server through handlers of its own; the inherited ones
        # can keep it serving. polars (imported with the store) catches SIGINT with
        # SA_RESTART, so a blocking wait resumes after Ctrl-C and Python's handler never
        # runs. SIGTERM can arrive ignored, and an ignored signal stays ignored across exec:
        # a parent that ignores SIGINT (a background job) and ran a Dagster job in process
        # ignores SIGTERM too, as Dagster copies SIGINT's handler onto SIGTERM.
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        server, _ = start_http_server(args.port, addr=args.host, registry=registry)
        try:
            print(
                f"eval-pipeline: serving metrics on http://{args.host}:{server.server_port}"
                "/metrics",
                file=sys.stderr,
                flush=True,
            )
            # Timed: a signal that lands just before the wait blocks is handled when it ends.
            while not stop.wait(1.0):
                pass
        finally:
            server.shutdown()
            server.server_close()
            for sig, handler in previous.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, handler)
    return EXIT_OK


def _calibrations(args) -> int:
    from eval_pipeline.judge import calibration_markdown, stored_calibrations
    from eval_pipeline.storage import Store

    _, store_root = _roots(args)
    reports = stored_calibrations(Store(store_root))
    if not reports:
        print(
            f"eval-pipeline: no judge calibrations under {store_root} "
            "(materialize a judged dataset or its judge_calibration asset first)",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if args.json:
        rows = []
        for r in reports:
            rows.append(
                {
                    "judge": r.judge,
                    "rubric": r.rubric,
                    "rubric_version": r.rubric_version,
                    "status": r.status,
                    "message": r.message,
                    "labels": r.labels,
                    "labels_source": r.labels_source,
                    "readable_verdicts": r.parsed,
                    "result": r.result.to_json() if r.result else None,
                }
            )
        print(json.dumps(rows, indent=2))
    else:
        print(calibration_markdown(reports))
    return EXIT_OK


def _label(args) -> int:
    import signal

    from eval_pipeline.judge import label_session

    root, _ = _roots(args)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM end the session as "q" does (each rating is saved when given).
    # Handlers of its own, as in _metrics: with polars' SIGINT handler (SA_RESTART) a read
    # of standard input resumes after Ctrl-C, and the prompt waits for Enter.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}

    def ask(prompt: str) -> str | None:
        try:
            return input(prompt)
        except (EOFError, KeyboardInterrupt):
            return None

    try:
        session = label_session(root, args.rubric, args.rater, ask=ask, say=print, limit=args.limit)
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    print(
        f"\n{session.labelled} rated, {session.skipped} skipped, {session.remaining} left "
        f"for {session.rater} on {session.rubric}; saved in {session.path}"
    )
    return EXIT_OK


def _roots(args) -> tuple[str, str]:
    from eval_pipeline.catalog import default_project_root
    from eval_pipeline.storage import default_store_root

    root = str(Path(args.root).resolve()) if args.root else default_project_root()
    return root, args.store or default_store_root(root)


def _catalog_with_adapters(root: str, store_root: str):
    """The catalog, with the recipes' adapters trained in the store as models.

    What the ``catalog`` resource loads, read without Dagster (so a refusing preflight
    answers before Dagster is imported).
    """
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.storage import Store
    from eval_pipeline.training import load_recipes, with_adapter_models

    catalog = load_catalog(root, load_rows=False)
    return with_adapter_models(catalog, Store(store_root), load_recipes(root, catalog))


def _lm_eval(args) -> int:
    import re

    import yaml

    from eval_pipeline.catalog import dataset_spec_for, list_tasks, load_catalog, task_index

    root, _ = _roots(args)
    if args.lm_eval_command == "index":
        print(f"eval-pipeline: {len(task_index())} lm-eval tasks, groups and tags indexed")
        return EXIT_OK
    if args.lm_eval_command == "tasks":
        listing = list_tasks(args.patterns, check_local=args.local)
        if not listing:
            print(f"eval-pipeline: no lm-eval name matches {args.patterns}", file=sys.stderr)
            return EXIT_NO_DATA
        if args.json:
            print(json.dumps([vars(t) for t in listing], indent=2))
            return EXIT_OK
        for t in listing:
            status = ("ok" if t.problem is None else f"no: {t.problem}") if t.checked else ""
            print(f"{t.name}\t{t.kind}\t{status}".rstrip())
        return EXIT_OK
    name = args.name or re.sub(r"[^a-z0-9._-]+", "-", args.task.lower()).strip("-")
    folder = Path(root) / "datasets" / name
    if folder.exists():
        print(f"eval-pipeline: error: {folder} already exists", file=sys.stderr)
        return EXIT_USAGE
    spec = dataset_spec_for(
        args.task,
        name,
        num_fewshot=args.num_fewshot,
        primary_metric=args.primary_metric,
        suite=args.suite,
    )
    folder.mkdir(parents=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        rows = len(load_catalog(root, load_rows=False).dataset(name).rows)
    except Exception:
        import shutil

        shutil.rmtree(folder)  # nothing half-written stays behind
        raise
    print(f"eval-pipeline: wrote {folder / 'dataset.yaml'} ({rows} documents)")
    return EXIT_OK


def _doctor(args) -> int:
    from eval_pipeline.operations import catalog_preflight

    root, store_root = _roots(args)
    catalog = _catalog_with_adapters(root, store_root)
    report = catalog_preflight(catalog)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return EXIT_OK if report.ok else EXIT_FAILED
    models, datasets = len(catalog.model_slugs), len(catalog.dataset_names)
    judges = f" and {len(report.judges)} judge(s)" if report.judges else ""
    print(
        f"preflight of {len(report.partitions)} partitions ({models} model(s) x "
        f"{datasets} dataset(s)){judges}: {len(report.problems)} problem(s), "
        f"{len(report.notes)} note(s)"
    )
    if report.problems:
        print("problems:")
        print("\n".join(f"  {line}" for line in report.lines()))
    if report.notes:
        print("notes (not problems):")
        print("\n".join(f"  {note.line()}" for note in report.notes))
    return EXIT_OK if report.ok else EXIT_FAILED


def _run(args) -> int:
    from eval_pipeline.core.keys import PartitionKey

    root, store_root = _roots(args)
    # A fine-tuned model <base>__<recipe> is a model once its adapter is trained.
    catalog = _catalog_with_adapters(root, store_root)
    models = args.model or catalog.model_slugs
    datasets = list(args.dataset or [])
    for suite in args.suite or []:
        datasets += [d for d in catalog.suite(suite) if d not in datasets]
    datasets = datasets or [
        name
        for name, spec in catalog.dataset_specs.items()
        if not spec.suite or spec.in_default_run
    ]
    for m in models:
        catalog.model(m)
    for d in datasets:
        if d not in catalog.dataset_specs:
            raise KeyError(f"unknown dataset {d!r}; known: {', '.join(catalog.dataset_names)}")
    if not args.no_preflight:
        from eval_pipeline.operations import preflight

        # Before Dagster is imported: a machine that lacks something hears it in seconds.
        keys = [PartitionKey(model=m, dataset=d) for m in models for d in datasets]
        report = preflight(catalog, keys)
        if not report.ok:
            print(f"eval-pipeline: {report.refusal('nothing was run')}", file=sys.stderr)
            return EXIT_USAGE

    import dagster as dg

    from eval_pipeline.defs import build_definitions, mark_dead_runs
    from eval_pipeline.defs.jobs import REPORTING_JOB
    from eval_pipeline.operations import host_tags
    from eval_pipeline.stages import leaderboard_markdown
    from eval_pipeline.storage import Store

    _use_dagster_home(root, create=True)
    defs = build_definitions(root, store_root)
    job = defs.resolve_job_def("evaluation_job")
    limit = None if args.full else args.limit
    run_config = {
        "ops": {
            "generations": {
                "config": {
                    "sample_limit": limit,
                    "use_cache": not args.no_cache,
                    "preflight": not args.no_preflight,
                }
            }
        },
        # Step events at INFO: progress lines and results, not Dagster's DEBUG chatter.
        "loggers": {"console": {"config": {"log_level": args.log_level}}},
    }
    failed = []
    budget_tags: dict[str, str] = {}
    if args.budget is not None:
        from eval_pipeline.defs.jobs import BUDGET_SCOPE_TAG, BUDGET_TAG

        # One scope for every run of this invocation: they share one budget.
        scope = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        budget_tags = {BUDGET_TAG: str(args.budget), BUDGET_SCOPE_TAG: scope}
    # Standard output carries the leaderboard alone (``--json`` is parsed by scripts); the
    # node's progress lines, written to stdout for SLURM job logs, go to stderr here.
    with dg.DagsterInstance.get() as instance, contextlib.redirect_stdout(sys.stderr):
        # A previous run killed mid-way is still STARTED: say it failed before starting anew.
        for dead in mark_dead_runs(instance):
            print(f"eval-pipeline: {dead.describe()}", file=sys.stderr, flush=True)
        for m in models:
            for d in datasets:
                key = PartitionKey(model=m, dataset=d)
                start = time.perf_counter()
                # A not-applicable cell still runs (no model call): its n/a row is stored.
                reason = catalog.not_applicable_reason(m, d)
                print(
                    f"== {key.key}: "
                    + (
                        f"not applicable: {reason}"
                        if reason
                        else f"evaluating ({'all' if limit is None else limit} samples)"
                    ),
                    file=sys.stderr,
                    flush=True,
                )
                result = job.execute_in_process(
                    partition_key=key.key,
                    instance=instance,
                    run_config=run_config,
                    raise_on_error=False,
                    tags={**host_tags(), **budget_tags},
                )
                calls = _metadata_value(result, "generations", "model_calls")
                status = "ok" if result.success else "FAILED"
                print(
                    f"== {key.key}: {status} in {time.perf_counter() - start:.1f}s, "
                    f"model calls: {calls}, run id {result.run_id}",
                    file=sys.stderr,
                    flush=True,
                )
                if not result.success:
                    failed.append(key.key)
        if len(failed) < len(models) * len(datasets):
            # The leaderboard and reports read every stored partition: built once, last.
            start = time.perf_counter()
            reporting = defs.resolve_job_def(REPORTING_JOB).execute_in_process(
                instance=instance,
                run_config={"loggers": run_config["loggers"]},
                raise_on_error=False,
                tags=host_tags(),
            )
            print(
                f"== reporting: {'ok' if reporting.success else 'FAILED'} in "
                f"{time.perf_counter() - start:.1f}s, run id {reporting.run_id}",
                file=sys.stderr,
                flush=True,
            )
            if not reporting.success:
                failed.append(REPORTING_JOB)
    board = Store(store_root).read_optional("leaderboard")
    if board is None:
        # Every partition failed, and no earlier run wrote a leaderboard.
        print(
            f"eval-pipeline: failed partitions: {', '.join(failed) or 'none'}; there is no "
            "leaderboard yet (no partition has completed). The step failures are in the "
            "log above and in the Dagster UI.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    board = board.filter(board["model"].is_in(models) & board["dataset"].is_in(datasets))
    print(json.dumps(board.to_dicts(), indent=2) if args.json else leaderboard_markdown(board))
    if failed:
        print(f"eval-pipeline: failed partitions: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _runs(args) -> int:
    import dagster as dg

    from eval_pipeline.defs import mark_dead_runs

    if not _use_dagster_home(_roots(args)[0], create=False):
        print("eval-pipeline: no DAGSTER_HOME and no run history to check", file=sys.stderr)
        return EXIT_NO_DATA
    with dg.DagsterInstance.get() as instance:
        dead = mark_dead_runs(instance, dry_run=args.dry_run, assume_local=args.assume_local)
    for run in dead:
        print(run.describe())
    if not dead:
        print("no STARTED run with a dead process")
    return EXIT_OK


def _use_dagster_home(root: str, *, create: bool) -> bool:
    """Point DAGSTER_HOME at ``<root>/.dagster_home`` unless it is set; False if there is none."""
    if os.environ.get("DAGSTER_HOME"):
        return True
    home = Path(root) / ".dagster_home"
    if create:
        home.mkdir(exist_ok=True)
    elif not home.exists():
        return False
    os.environ["DAGSTER_HOME"] = str(home)
    return True


def _metadata_value(result, asset: str, name: str):
    for mat in result.asset_materializations_for_node(asset):
        if name in mat.metadata:
            return mat.metadata[name].value
    return None


def _leaderboard(args) -> int:
    from eval_pipeline.stages import leaderboard_markdown
    from eval_pipeline.storage import Store

    _, store_root = _roots(args)
    board = Store(store_root).read_optional("leaderboard")
    if board is None:
        print(
            "eval-pipeline: error: no leaderboard yet; run `eval-pipeline run` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(board.to_dicts(), indent=2) if args.json else leaderboard_markdown(board))
    return EXIT_OK


def _emit(frame, as_json: bool) -> None:
    from eval_pipeline.report import frame_json, frame_markdown

    print(frame_json(frame) if as_json else frame_markdown(frame))


def _results(args) -> int:
    from eval_pipeline.report import results_table
    from eval_pipeline.storage import Store

    _, store_root = _roots(args)
    table = results_table(
        Store(store_root),
        models=args.model,
        datasets=args.dataset,
        tags=args.tag,
        metrics=args.metric,
    )
    if table.height == 0:
        print(f"eval-pipeline: no results in {store_root} match the filters", file=sys.stderr)
        return EXIT_NO_DATA
    _emit(table, args.json)
    return EXIT_OK


def _samples(args) -> int:
    from eval_pipeline.report import samples_table
    from eval_pipeline.storage import Store

    _, store_root = _roots(args)
    try:
        table = samples_table(
            Store(store_root),
            args.model,
            args.dataset,
            sample_ids=args.ids,
            metric=args.metric,
            below=args.below,
            limit=args.limit or None,
        )
    except FileNotFoundError:
        print(
            f"eval-pipeline: nothing stored for {args.dataset}|{args.model} in {store_root}",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if table.height == 0:
        print("eval-pipeline: no samples match", file=sys.stderr)
        return EXIT_NO_DATA
    _emit(table, args.json)
    return EXIT_OK


def _compare(args) -> int:
    import polars as pl

    from eval_pipeline.regression import (
        DEFAULT_ALPHA,
        DEFAULT_THRESHOLD,
        BaselineError,
        compare_runs,
        report_json_text,
        resolve_run,
    )
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    store = Store(store_root)
    try:
        a, b = resolve_run(args.a, root, store), resolve_run(args.b, root, store)
    except BaselineError as exc:
        print(f"eval-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = _baseline_settings(args.a, root)
    frames = []
    for run in (a, b):
        scores = run.scores
        if args.model:
            scores = scores.filter(pl.col("model").is_in(args.model))
        if args.dataset:
            scores = scores.filter(pl.col("dataset").is_in(args.dataset))
        frames.append(scores)
    report = compare_runs(
        frames[0],
        frames[1],
        alpha=args.alpha if args.alpha is not None else settings.get("alpha", DEFAULT_ALPHA),
        threshold=args.threshold
        if args.threshold is not None
        else settings.get("threshold", DEFAULT_THRESHOLD),
        thresholds=settings.get("thresholds") if args.threshold is None else None,
        mid_p=not args.exact,
        baseline_name=a.name,
        current_name=b.name,
    )
    for refusal in report.refused:
        print(f"eval-pipeline: not compared: {refusal}", file=sys.stderr)
    if not report.comparisons:
        print(
            "eval-pipeline: the two runs share no model x dataset x metric answered the same "
            "way; nothing compared",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    if args.output:
        Path(f"{args.output}.md").write_text(report.to_markdown())
        Path(f"{args.output}.json").write_text(report_json_text(report) + "\n")
    print(report_json_text(report) if args.json else report.to_markdown())
    return EXIT_FAILED if report.regressed else EXIT_OK


def _history(args) -> int:
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.report import metric_history
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    metric = args.metric
    if metric is None:
        catalog = load_catalog(root, load_rows=False)
        if args.dataset not in catalog.dataset_specs:
            raise KeyError(
                f"unknown dataset {args.dataset!r} (pass --metric for a dataset no longer in "
                f"the catalog); known: {', '.join(catalog.dataset_names)}"
            )
        metric = catalog.dataset_specs[args.dataset].primary
    table = metric_history(Store(store_root), args.model, args.dataset, metric)
    if table.height == 0:
        print(
            f"eval-pipeline: no kept runs of {args.dataset}|{args.model} with metric "
            f"{metric!r} in {store_root}",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    _emit(table, args.json)
    return EXIT_OK


def _report(args) -> int:
    import webbrowser

    from eval_pipeline.stages import write_explorer
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    store = Store(store_root)
    if not store.table_dir("aggregates").exists():
        print(
            f"eval-pipeline: nothing evaluated in {store_root} yet; run `eval-pipeline run` first",
            file=sys.stderr,
        )
        return EXIT_NO_DATA
    catalog = _catalog_with_adapters(root, store_root)
    index = write_explorer(catalog, store, Path(args.output) if args.output else None)
    print(index)
    if args.open_browser:
        webbrowser.open(index.resolve().as_uri())
    return EXIT_OK


def _baseline_settings(reference: str, root: str) -> dict:
    # A pinned baseline carries the alpha and thresholds to judge new runs by.
    from eval_pipeline.regression import BaselineError, baseline_dir, load_baseline

    name = reference.removeprefix("baseline:")
    if not (reference.startswith("baseline:") or baseline_dir(root, name).exists()):
        return {}
    try:
        base = load_baseline(root, name)
    except BaselineError:
        return {}
    return {"alpha": base.alpha, "threshold": base.threshold, "thresholds": base.thresholds}


def _costs(args) -> int:
    from datetime import UTC, datetime

    import polars as pl

    from eval_pipeline.report import judge_spend
    from eval_pipeline.storage import Store

    def when(text: str | None, default: datetime) -> datetime:
        if not text:
            return default
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"not an ISO date or time: {text!r} (e.g. 2026-11-01 or 2026-11-01T12:00)"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    since = when(args.since, datetime.min.replace(tzinfo=UTC))
    until = when(args.until, datetime.now(UTC))
    root, store_root = _roots(args)
    catalog = _catalog_with_adapters(root, store_root)
    spend = pl.concat([_generation_spend(), judge_spend(Store(store_root))], how="vertical_relaxed")
    spend = spend.filter((pl.col("time") >= since) & (pl.col("time") <= until))
    providers = {slug: m.provider for slug, m in catalog.models.items()}
    spend = spend.with_columns(
        pl.col("model").replace_strict(providers, default="unknown").alias("provider")
    )
    if spend.height == 0:
        print("eval-pipeline: no spend recorded in that period", file=sys.stderr)
        return EXIT_NO_DATA
    keys = {
        "model": ["model", "provider"],
        "provider": ["provider"],
        "partition": ["model", "role", "partition"],
    }[args.by]
    table = (
        spend.group_by(keys)
        .agg(
            pl.col("requests").sum(),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("cost_usd").sum(),
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
        )
        .sort("cost_usd", descending=True)
    )
    _emit(table, args.json)
    return EXIT_OK


def _generation_spend():
    """New spend of every recorded ``generations`` materialization (cached rows cost nothing)."""
    from datetime import UTC, datetime

    import dagster as dg
    import polars as pl

    rows = []
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            records, cursor = [], None
            while True:  # the instance hands out at most 10000 records per call
                page = instance.fetch_materializations(
                    dg.AssetKey("generations"), limit=5000, cursor=cursor
                )
                records.extend(page.records)
                if not page.has_more:
                    break
                cursor = page.cursor
            for record in records:
                mat = record.asset_materialization
                meta = {k: v.value for k, v in mat.metadata.items()}
                partition = str(mat.partition or "")
                rows.append(
                    {
                        "time": datetime.fromtimestamp(record.timestamp, UTC),
                        "model": partition.partition("|")[2],
                        "role": "generation",
                        "partition": partition,
                        "input_tokens": int(meta.get("input_tokens", 0)),
                        "output_tokens": int(meta.get("output_tokens", 0)),
                        "cost_usd": float(meta.get("cost_usd", 0.0)),
                        "requests": int(meta.get("model_calls", 0)),
                    }
                )
    from eval_pipeline.report import SPEND_SCHEMA

    return pl.DataFrame(rows, schema=SPEND_SCHEMA)


def _baseline(args) -> int:
    from eval_pipeline.regression import pin_baseline
    from eval_pipeline.storage import Store

    root, store_root = _roots(args)
    folder = pin_baseline(
        Store(store_root),
        root,
        args.name,
        models=args.model,
        datasets=args.dataset,
        description=args.description,
    )
    print(f"pinned baseline {args.name!r} at {folder}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
