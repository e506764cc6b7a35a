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

One module per command (or small family of commands) holds its handler; ``parser.py``
declares every command's options; ``_common.py`` has the exit codes and the helpers they
share. A new command is its options in ``parser.py``, a module with its handler, and one
line in ``HANDLERS``.
"""

from __future__ import annotations

import importlib
import sys

from eval_pipeline.cli._common import EXIT_FAILED, EXIT_NO_DATA, EXIT_OK, EXIT_USAGE
from eval_pipeline.cli.parser import build_parser

# Each command's handler, "module:function" in this package. A command's module is imported
# only when that command runs, so --help and each command load only what they use.
HANDLERS = {
    "run": "run:run",
    "doctor": "doctor:doctor",
    "lm-eval": "lm_eval:lm_eval",
    "leaderboard": "results:leaderboard",
    "results": "results:results",
    "samples": "results:samples",
    "history": "results:history",
    "compare": "compare:compare",
    "baseline": "compare:baseline",
    "report": "report:report",
    "costs": "costs:costs",
    "plan": "plan:plan",
    "label": "judge:label",
    "calibrations": "judge:calibrations",
    "train": "train:train",
    "metrics": "metrics:metrics",
    "runs": "runs:runs",
}

__all__ = [
    "EXIT_FAILED",
    "EXIT_NO_DATA",
    "EXIT_OK",
    "EXIT_USAGE",
    "HANDLERS",
    "build_parser",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    """Run ``eval-pipeline`` with ``argv`` (default: the process's arguments); the exit code."""
    args = build_parser().parse_args(argv)
    # Imported once the arguments parse: pydantic would slow --help (startup cost).
    from eval_pipeline.core.errors import EvalPipelineError

    module, _, function = HANDLERS[args.command].partition(":")
    try:
        handler = getattr(importlib.import_module(f"eval_pipeline.cli.{module}"), function)
        return handler(args)
    except (EvalPipelineError, KeyError, ValueError) as exc:
        print(f"eval-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
