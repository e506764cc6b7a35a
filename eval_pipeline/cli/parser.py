"""The argument parser of ``eval-pipeline``: every command, its options and their help."""

from __future__ import annotations

import argparse

from eval_pipeline.cli._common import DEFAULT_LIMIT, EXIT_CODES_HELP


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command's options are added by its own function."""
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

    _add_run_command(sub)
    _add_doctor_command(sub)
    _add_lm_eval_commands(sub)
    _add_leaderboard_command(sub)
    _add_results_commands(sub)
    _add_runs_commands(sub)
    _add_metrics_commands(sub)
    _add_train_commands(sub)
    return parser


def _add_run_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``run``: materialize the evaluation job and print the leaderboard."""
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
    run.add_argument(
        "--batch",
        action="store_true",
        help="send the API models' uncached requests as provider batches (OpenAI Batch, "
        "Anthropic Message Batches: half price, answered within 24 hours), waiting for "
        "them with progress; the catalog's route: batch does the same per model",
    )
    run.add_argument(
        "--batch-online-fallback",
        action="store_true",
        help="the batch route: send online (at online prices) what the batches left "
        "unanswered after three rounds (expired, cancelled)",
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


def _add_doctor_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``doctor``: the whole catalog's preflight."""
    doctor = _command(
        sub,
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
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_lm_eval_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lm-eval tasks|add|index``: lm-evaluation-harness tasks as datasets."""
    lm_eval = _command(
        sub,
        "lm-eval",
        help="find lm-evaluation-harness tasks that run here, and add one as a dataset",
        description=(
            "lm-eval's tasks run by name as datasets with `loader: lm_eval` (docs/benchmarks.md). "
            "`tasks` lists the tasks, groups and tags of the installed lm-eval (`--local`: "
            "with whether their data is on this machine); `add` writes "
            "datasets/<name>/dataset.yaml for one; `index` builds the task index (make does)."
        ),
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


def _add_leaderboard_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``leaderboard``: the stored leaderboard."""
    board = sub.add_parser("leaderboard", help="print the stored leaderboard")
    _json_flag(board)


def _add_train_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = sub.add_parser(
        "train",
        help="train a recipe's LoRA adapter (or find it stored); print its path, hash and report",
    )
    train.add_argument("--recipe", required=True, help="recipe name in recipes.yaml")
    train.add_argument(
        "--force", action="store_true", help="train even when the store has this recipe's adapter"
    )
    train.add_argument("--json", action="store_true", help="print the adapter record as JSON")


def _add_metrics_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    metrics = _command(
        sub,
        "metrics",
        help="Prometheus metrics of the run history and the stored results",
        description=(
            "Runs by job and status and partition durations (from the Dagster instance under "
            "$DAGSTER_HOME), request latency and errors by provider, tokens and cost by "
            "provider and model, cache hits, metric means, flagged regressions and suspicious "
            "sandbox programs (from the store). See docs/operations.md for a scrape config "
            "and alert rules."
        ),
    )
    msub = metrics.add_subparsers(dest="metrics_command", required=True)
    serve = msub.add_parser("serve", help="serve /metrics over HTTP until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    write = msub.add_parser(
        "write", help="write the metrics once, in the node exporter's textfile format"
    )
    write.add_argument("file", help="the .prom file to write (atomically)")


def _add_runs_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="maintain the Dagster run history under $DAGSTER_HOME")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    dead = _command(
        rsub,
        "mark-dead",
        help="mark runs still STARTED whose process is gone as FAILURE",
        description=(
            "A run whose process was killed (SIGKILL, out of memory, a closed terminal) stays "
            "STARTED in the run history for ever. This marks each STARTED run whose process "
            "no longer exists on this machine as FAILURE. Runs tagged with another host are "
            "left alone; untagged runs count as this machine's when the instance keeps its "
            "runs in SQLite (a local DAGSTER_HOME), or with --assume-local."
        ),
    )
    dead.add_argument(
        "--dry-run", action="store_true", help="list the runs that would be marked; change nothing"
    )
    dead.add_argument(
        "--assume-local",
        action="store_true",
        help="treat runs without a host tag as this machine's (shared PostgreSQL instance)",
    )


def _add_results_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that read the stored results."""
    _add_results_command(sub)
    _add_compare_command(sub)
    _add_history_command(sub)
    _add_report_command(sub)
    _add_costs_command(sub)
    _add_plan_command(sub)
    _add_samples_command(sub)
    _add_calibrations_command(sub)
    _add_label_command(sub)
    _add_baseline_commands(sub)


def _add_results_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``results``: the aggregates table."""
    results = _command(
        sub,
        "results",
        help="table of aggregates (mean, stderr, 95%% CI per metric); per slice with --tag",
    )
    results.add_argument("--model", action="append", help="model slug (repeatable)")
    results.add_argument("--dataset", action="append", help="dataset name (repeatable)")
    results.add_argument(
        "--tag", action="append", help="per-slice results for this tag (repeatable)"
    )
    results.add_argument("--metric", action="append", help="metric name (repeatable)")
    _json_flag(results)


def _add_compare_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``compare``: paired comparison of two runs."""
    compare = _command(
        sub,
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


def _add_history_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``history``: a partition's metric over its kept runs."""
    history = _command(
        sub,
        "history",
        help="a partition's primary metric over its kept runs, with 95%% CIs and cost",
    )
    history.add_argument("--model", required=True, help="model slug")
    history.add_argument("--dataset", required=True, help="dataset name")
    history.add_argument("--metric", help="metric to show (default: the dataset's primary metric)")
    _json_flag(history)


def _add_report_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``report``: the static HTML explorer."""
    report = _command(
        sub,
        "report",
        help="write the static HTML results explorer; --open opens it in a browser",
        description=(
            "Writes <store>/reports/explorer/index.html: a leaderboard heatmap, per-sample "
            "drill-down, run-to-run diffs and trends, readable from the file system with no "
            "server (the reporting step writes the same after every run)."
        ),
    )
    report.add_argument("--output", help="folder to write to (default: <store>/reports/explorer)")
    report.add_argument(
        "--open", action="store_true", dest="open_browser", help="open it in a web browser"
    )


def _add_costs_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``costs``: spend over a period."""
    costs = _command(
        sub,
        "costs",
        help="spend by model and provider over a period (generation runs and judge calls)",
    )
    costs.add_argument("--since", help="start, ISO date or time (default: all time)")
    costs.add_argument("--until", help="end, ISO date or time (default: now)")
    costs.add_argument(
        "--by",
        choices=["model", "provider", "partition"],
        default="model",
        help="group spend by (default: model)",
    )
    _json_flag(costs)


def _add_plan_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``plan``: a run's requests, tokens and cost before any request."""
    plan = _command(
        sub,
        "plan",
        help="before any request: tokens, requests and cost of a run per model, dataset and "
        "route (online, batch, local)",
    )
    plan.add_argument("--model", action="append", help="model slug (repeatable; default: all)")
    plan.add_argument("--dataset", action="append", help="dataset name (repeatable; default: all)")
    plan_limit = plan.add_mutually_exclusive_group()
    plan_limit.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"samples per dataset, as in run (default {DEFAULT_LIMIT})",
    )
    plan_limit.add_argument("--full", action="store_true", help="every sample")
    plan.add_argument(
        "--batch", action="store_true", help="plan the API models on the batch route (run --batch)"
    )
    plan.add_argument("--no-cache", action="store_true", help="count cached requests as sent")
    _json_flag(plan)


def _add_samples_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``samples``: per-sample rows of one partition."""
    samples = _command(
        sub,
        "samples",
        help="per-sample inputs, outputs and scores of one model x dataset",
    )
    samples.add_argument("--model", required=True, help="model slug")
    samples.add_argument("--dataset", required=True, help="dataset name")
    samples.add_argument("--id", action="append", dest="ids", help="sample id (repeatable)")
    samples.add_argument("--metric", help="metric to filter on (with --below)")
    samples.add_argument(
        "--below", type=float, help="keep samples whose --metric is below this (failures: 1)"
    )
    samples.add_argument("--limit", type=int, default=20, help="rows to show (default 20; 0: all)")
    _json_flag(samples)


def _add_calibrations_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``calibrations``: the stored judge calibrations."""
    calibrations = _command(
        sub,
        "calibrations",
        help="print the stored judge calibrations: labels, method, agreement before/after",
    )
    calibrations.add_argument("--json", action="store_true", help="print JSON")


def _add_label_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``label``: rate judge-calibration responses by hand."""
    label = _command(
        sub,
        "label",
        help="rate judge-calibration responses by hand (writes datasets/judge-labels/human.jsonl)",
        description=(
            "Shows each calibration response of a rubric with the rubric's anchors and asks "
            "for a 1-5 rating (s skips, q quits). Every rating is saved at once; a later "
            "session resumes where this one stopped. Once a rubric has human ratings, its "
            "judge calibration uses them instead of the rule-assigned labels."
        ),
    )
    label.add_argument(
        "action",
        nargs="?",
        choices=["import"],
        help=(
            "import FILE: add the ratings of a JSONL or CSV file, pointwise (prompt, response, "
            "rubric, score, rater) or pairwise (prompt, answer_a, answer_b, preferred: A, B "
            "or tie, rater); a bad row is refused naming its line and field"
        ),
    )
    label.add_argument("file", nargs="?", help="the file to import (with `import`)")
    label.add_argument("--rubric", help="rubric to rate on (e.g. helpfulness)")
    label.add_argument("--rater", help="your name, a slug (e.g. alice)")
    label.add_argument("--limit", type=int, help="stop after this many ratings")


def _add_baseline_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``baseline pin``: pin the stored scores as a baseline."""
    baseline = sub.add_parser("baseline", help="pin the stored scores as a named baseline")
    bsub = baseline.add_subparsers(dest="baseline_command", required=True)
    pin = bsub.add_parser("pin", help="copy the store's scores into baselines/<name>/")
    pin.add_argument("name", help="baseline name (a slug)")
    pin.add_argument("--model", action="append", help="only this model (repeatable)")
    pin.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    pin.add_argument("--description", default="", help="what this baseline is")


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,  # noqa: A002 (argparse's name)
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A command whose help ends with the exit codes."""
    return sub.add_parser(name, help=help, description=description, epilog=EXIT_CODES_HELP)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: print JSON instead of Markdown."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
