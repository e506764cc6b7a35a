r"""BIG-bench task files from a folder the user points at, read into dataset rows.

BIG-bench's published tasks (Apache-2.0) are JSON files,
``bigbench/benchmark_tasks/<task>/task.json`` (and ``<task>/<subtask>/task.json``) in
the BIG-bench repository. No package index reachable from a fresh machine serves them any
more, so nothing here downloads them: ``EVAL_PIPELINE_BIGBENCH_DIR`` names a folder that
holds them, one of

- a checkout of the BIG-bench repository (the folder holding ``bigbench/benchmark_tasks/``);
- its ``benchmark_tasks`` folder itself, or any folder of ``<task>/task.json`` files;
- a cache written by earlier versions of this project (``.../bigbench`` holding
  ``1.0.0/<task>/task.json``).

Without the variable, such an earlier cache at ``~/.cache/eval_pipeline/bigbench/1.0.0``
is used when present. Without either, only the datasets that use the ``bigbench`` loader
fail, each naming what to set.

A JSON task's examples carry ``input`` and ``target_scores`` (multiple choice: each
choice with a score, the best-scored ones correct) and/or ``target`` (generative: one
string or a list of acceptable strings). The task's own ``task_prefix`` and
``example_input_prefix`` / ``example_output_prefix`` (defaults ``"\\nQ: "`` and
``"\\nA: "``, as in BIG-bench's JSON task runner) frame each input; with
``append_choices_to_input`` (BIG-bench's default: true) a multiple-choice input lists its
choices after ``choice_prefix`` (default ``"\\n  choice: "``). BIG-bench puts the task
prefix once before its few-shot examples; here it frames every sample, examples included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Any: BIG-bench task files as JSON (any JSON type).
from typing import Any

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.types import Missing

DIR_ENV = "EVAL_PIPELINE_BIGBENCH_DIR"
# Where earlier versions of the project cached the task files; still read when present.
LEGACY_VERSION = "1.0.0"
SETUP_HINT = (
    f"set {DIR_ENV} to a checkout of the BIG-bench repository "
    "(git clone https://github.com/google/BIG-bench) or to a folder of <task>/task.json files"
)


def tasks_root(environ: dict[str, str] | None = None) -> Path | None:
    """The folder holding ``<task>/task.json``, or None when no BIG-bench source is set up.

    ``EVAL_PIPELINE_BIGBENCH_DIR`` wins (a repository checkout, its ``benchmark_tasks``
    folder, a folder of task folders, or an old cache); without it, an old cache in the
    user's home is used when it exists.
    """
    env = os.environ if environ is None else environ
    configured = env.get(DIR_ENV)
    if configured:
        base = Path(configured).expanduser()
        for candidate in (
            base / "bigbench" / "benchmark_tasks",
            base / "benchmark_tasks",
            base / LEGACY_VERSION,
        ):
            if candidate.is_dir():
                return candidate
        return base
    legacy = Path.home() / ".cache" / "eval_pipeline" / "bigbench" / LEGACY_VERSION
    return legacy if legacy.is_dir() else None


def source_problem(task: str, environ: dict[str, str] | None = None) -> str | None:
    """Why the files of BIG-bench ``task`` cannot be read, or None when they can."""
    missing = source_missing(task, environ=environ)
    return None if missing is None else f"{missing.what}: {missing.fix}"


def source_missing(
    task: str, subtask: str | None = None, environ: dict[str, str] | None = None
) -> Missing | None:
    """What is missing to read BIG-bench ``task`` (and ``subtask``), and what to set; or None.

    Looks at folders and files only; nothing is read or downloaded.
    """
    root = tasks_root(environ)
    if root is None:
        return Missing("no BIG-bench task files on this machine", SETUP_HINT)
    if not root.is_dir():
        return Missing(f"{DIR_ENV}={root} is not a folder", SETUP_HINT)
    if not (root / task / "task.json").is_file():
        return Missing(
            f"no BIG-bench task '{task}' in {root} (no {task}/task.json there)",
            f"point {DIR_ENV} at a BIG-bench checkout that has the task",
        )
    if subtask and not (root / task / subtask / "task.json").is_file():
        return Missing(
            f"BIG-bench task '{task}' in {root} has no subtask '{subtask}'",
            f"point {DIR_ENV} at a BIG-bench checkout that has it, or fix loader_options.subtask",
        )
    return None


def task_dir(task: str, shown: str, field: str) -> Path:
    """The folder of ``task``.

    Raises:
        CatalogError: No BIG-bench source is set up, or it lacks the task; naming the spec
            ``shown`` and ``field`` and what to set.
    """
    problem = source_problem(task)
    if problem:
        raise CatalogError(shown, field, problem)
    root = tasks_root()
    assert root is not None
    return root / task


def task_rows(
    task: str, subtask: str | None, multiple_choice: bool, shown: str, field: str
) -> list[dict[str, Any]]:
    """Rows of one BIG-bench JSON task (or one subtask), ids ``<task>[/<subtask>]-<n>``.

    Each row has ``id``, ``input`` (framed with the task's prefixes, ending with the
    output prefix without its trailing space), ``choices`` (from ``target_scores``;
    empty for a generative row) and ``target``: the correct choices of a
    ``multiple_choice`` row, the acceptable answers (``target``) of a generative one.

    Raises:
        CatalogError: The task or subtask is missing, its JSON is not a task, or an
            example lacks what the task type needs.
    """
    base = task_dir(task, shown, field)
    top = _read_task(base / "task.json", shown, field)
    if subtask:
        path = base / subtask / "task.json"
        if not path.is_file():
            known = sorted(p.parent.name for p in base.glob("*/task.json"))
            raise CatalogError(
                shown, field, f"BIG-bench task '{task}' has no subtask '{subtask}' (known: {known})"
            )
        tasks = [(f"{task}/{subtask}", _read_task(path, shown, field))]
    elif top.get("examples"):
        tasks = [(task, top)]
    else:  # a task made of subtasks: all of them, in name order
        tasks = [
            (f"{task}/{p.parent.name}", _read_task(p, shown, field))
            for p in sorted(base.glob("*/task.json"))
        ]
    rows: list[dict[str, Any]] = []
    for name, spec in tasks:
        merged = {**top, **spec} if spec is not top else top
        rows += _examples(name, merged, multiple_choice, shown, field)
    return rows


def _read_task(path: Path, shown: str, field: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(shown, field, f"cannot read BIG-bench file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(shown, field, f"BIG-bench file {path} is not a JSON task")
    return data


def _examples(
    name: str, spec: dict[str, Any], multiple_choice: bool, shown: str, field: str
) -> list[dict[str, Any]]:
    task_prefix = str(spec.get("task_prefix", ""))
    in_prefix = str(spec.get("example_input_prefix", "\nQ: "))
    out_prefix = str(spec.get("example_output_prefix", "\nA: "))
    choice_prefix = str(spec.get("choice_prefix", "\n  choice: "))
    append_choices = bool(spec.get("append_choices_to_input", True))
    rows = []
    for i, example in enumerate(spec.get("examples") or []):
        scores = example.get("target_scores")
        text = f"{task_prefix}{in_prefix}{example.get('input', '')}"
        if multiple_choice:
            if not isinstance(scores, dict) or not scores:
                raise CatalogError(
                    shown,
                    field,
                    f"BIG-bench {name} example {i} has no target_scores to choose from",
                )
            choices = [str(c) for c in scores]
            best = max(float(v) for v in scores.values())
            target = [c for c, v in zip(choices, scores.values(), strict=True) if float(v) == best]
            if append_choices:
                text += "".join(f"{choice_prefix}{c}" for c in choices)
        else:
            choices = []
            raw = example.get("target")
            if raw is None and isinstance(scores, dict) and scores:
                best = max(float(v) for v in scores.values())
                raw = [c for c, v in scores.items() if float(v) == best]
            if raw is None:
                raise CatalogError(shown, field, f"BIG-bench {name} example {i} has no target")
            target = [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]
        text = f"{text}{out_prefix}".rstrip(" ")
        rows.append({"id": f"{name}-{i}", "input": text, "choices": choices, "target": target})
    return rows
