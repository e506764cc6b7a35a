"""Scorer names (as written in dataset specs) mapped to their functions.

A scorer outside this package is named by its import path, ``package.module:function``
(e.g. ``my_evals.scorers:starts_with``): the function takes the frame (``sample_id``,
``completion``, ``target``, ``targets``, ``fields`` and, for multiple choice,
``choices`` and ``choice_logprobs``) and its parameters as keywords, and returns one row
per sample with ``sample_id``, ``value`` and ``detail``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable

# Any: scorer params from YAML, checked by each scorer.
from typing import Any

import polars as pl

from eval_pipeline.scoring._choice import acc, acc_bytes, acc_norm
from eval_pipeline.scoring._json import json_fields
from eval_pipeline.scoring._text import exact_match, normalized_match, numeric_match, regex_match
from eval_pipeline.scoring.sandbox import BWRAP, PROCESS, PROCESS_REFUSED


def _code_execution(frame: pl.DataFrame, **params: Any) -> pl.DataFrame:
    # Imported lazily: the sandbox module is only needed by code datasets.
    from eval_pipeline.scoring._code import code_execution

    return code_execution(frame, **params)


def _code_params() -> inspect.Signature:
    from eval_pipeline.scoring._code import code_execution

    return inspect.signature(code_execution)


ScorerFn = Callable[..., pl.DataFrame]


def _lm_eval_metrics(frame: pl.DataFrame) -> pl.DataFrame:
    """Placeholder of ``lm_eval`` datasets' scorer: the score stage runs lm-eval's metrics."""
    raise RuntimeError("the lm_eval scorer runs through the score stage (stages.score)")


SCORERS: dict[str, ScorerFn] = {
    "exact_match": exact_match,
    "normalized_match": normalized_match,
    "numeric_match": numeric_match,
    "regex_match": regex_match,
    "json_fields": json_fields,
    "code_execution": _code_execution,
    # An lm_eval dataset's own metrics: run by the score stage through lm-eval's task.
    "lm_eval": _lm_eval_metrics,
    # Multiple choice (lm-evaluation-harness definitions).
    "acc": acc,
    "acc_norm": acc_norm,
    "acc_bytes": acc_bytes,
}
# Scorers that need the choices of a ``task: multiple_choice`` dataset.
MC_SCORERS = frozenset({"acc", "acc_norm", "acc_bytes"})
# Model-graded scorers: judge models rate the completions in the judge stage
# (eval_pipeline.judge), which writes the ``judgements`` table; the score stage reads it.
# Only their parameters are checked here.
JUDGE_SCORER = "llm_judge"
MT_BENCH_SCORER = "mt_bench"  # MT-Bench's single-answer 1-10 grading, per turn
_MT_BENCH_PARAMS = frozenset({"judges", "max_tokens"})
PAIRWISE_SCORER = "pairwise_judge"  # pairwise judging against a baseline, both orders
_PAIRWISE_PARAMS = frozenset(
    {"judges", "max_tokens", "baseline_field", "baseline_model", "question_field"}
)
_RUBRIC_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_JUDGE_PARAMS = frozenset({"rubric", "judges", "max_tokens", "question_field"})
JUDGED = (JUDGE_SCORER, MT_BENCH_SCORER, PAIRWISE_SCORER)
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads ``package.module:function``."""
    return bool(_IMPORT_PATH.match(name))


def _import(name: str) -> ScorerFn:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failed while importing
        raise KeyError(f"cannot import scorer module '{module_name}': {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise KeyError(f"cannot import scorer '{name}': module has no function '{attr}'")
    return function


def get_scorer(name: str) -> ScorerFn:
    """The scorer function named ``name``: a built-in name or ``package.module:function``."""
    if name in SCORERS:
        return SCORERS[name]
    if is_import_path(name):
        return _import(name)
    raise KeyError(
        f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))} (and {JUDGE_SCORER}, "
        f"{MT_BENCH_SCORER}, {PAIRWISE_SCORER}, run by the judge stage), or "
        "'package.module:function'"
    )


def check_scorer_params(name: str, params: dict[str, Any]) -> str | None:
    """Return a problem description if ``params`` do not fit scorer ``name``, else None."""
    if name == JUDGE_SCORER:
        return judge_params_problem(params)
    if name in (MT_BENCH_SCORER, PAIRWISE_SCORER):
        accepted = _MT_BENCH_PARAMS if name == MT_BENCH_SCORER else _PAIRWISE_PARAMS
        unknown = sorted(set(params) - accepted)
        if unknown:
            return (
                f"scorer '{name}' takes no parameter {unknown[0]!r} (accepted: {sorted(accepted)})"
            )
        judges = params.get("judges")
        if (
            not isinstance(judges, list)
            or not judges
            or not all(isinstance(j, str) for j in judges)
        ):
            return f"scorer '{name}': judges must be a non-empty list of model slugs"
        if name == PAIRWISE_SCORER and ("baseline_field" in params) == ("baseline_model" in params):
            return f"scorer '{name}': give exactly one of baseline_field and baseline_model"
        return None
    if name not in SCORERS:
        if not is_import_path(name):
            return (
                f"unknown scorer '{name}' (known: {', '.join(sorted([*SCORERS, *JUDGED]))}, or "
                "'package.module:function')"
            )
        try:
            function = _import(name)
        except KeyError as exc:
            return str(exc.args[0])
        sig = inspect.signature(function)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return None  # takes any parameters
    else:
        function = SCORERS[name]
        sig = _code_params() if name == "code_execution" else inspect.signature(function)
    accepted = frozenset(list(sig.parameters)[1:])
    unknown = sorted(set(params) - accepted)
    if unknown:
        return f"scorer '{name}' takes no parameter {unknown[0]!r} (accepted: {sorted(accepted)})"
    required = [
        p.name
        for p in list(sig.parameters.values())[1:]
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    missing = [p for p in required if p not in params]
    if missing:
        return f"scorer '{name}' needs parameter {missing[0]!r}"
    isolation = params.get("isolation", BWRAP)
    if name == "code_execution" and isolation == PROCESS:
        return f"scorer 'code_execution': {PROCESS_REFUSED}"
    if name == "code_execution" and isolation != BWRAP:
        return f"scorer 'code_execution': isolation must be 'bwrap', not {isolation!r}"
    return None


def run_scorer(name: str, frame: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """Run scorer ``name`` over ``frame`` and check that it returned one row per sample."""
    out = get_scorer(name)(frame, **params)
    if not isinstance(out, pl.DataFrame) or not {"sample_id", "value", "detail"} <= set(
        out.columns
    ):
        raise RuntimeError(
            f"scorer {name} must return a polars DataFrame with sample_id, value and detail"
        )
    if out.height != frame.height:
        raise RuntimeError(f"scorer {name} returned {out.height} rows for {frame.height} samples")
    return out


def judge_params_problem(params: dict[str, Any]) -> str | None:
    """A problem with an ``llm_judge`` scorer's parameters, or None.

    The full model is :class:`eval_pipeline.judge.JudgeParams`; this pure check lets the
    catalog refuse a bad spec without importing the judge package.
    """
    unknown = sorted(set(params) - _JUDGE_PARAMS)
    if unknown:
        return (
            f"scorer '{JUDGE_SCORER}' takes no parameter {unknown[0]!r} "
            f"(accepted: {sorted(_JUDGE_PARAMS)})"
        )
    rubric = params.get("rubric")
    if not isinstance(rubric, str) or not _RUBRIC_NAME.match(rubric):
        return (
            f"scorer '{JUDGE_SCORER}': rubric {rubric!r} must be the slug of a template "
            "prompts/judge-<rubric>.jinja"
        )
    judges = params.get("judges")
    if not isinstance(judges, list) or not judges or not all(isinstance(j, str) for j in judges):
        return f"scorer '{JUDGE_SCORER}': judges must be a non-empty list of model slugs"
    return None
