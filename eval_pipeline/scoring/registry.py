"""Scorer names (as written in dataset specs) mapped to their functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import polars as pl

from eval_pipeline.scoring._json import json_fields
from eval_pipeline.scoring._judge import judge_params_problem, llm_judge
from eval_pipeline.scoring._text import exact_match, normalized_match, numeric_match, regex_match


def _code_execution(frame: pl.DataFrame, **params: Any) -> pl.DataFrame:
    # Imported lazily: the sandbox module is only needed by code datasets.
    from eval_pipeline.scoring._code import code_execution

    return code_execution(frame, **params)


def _code_params() -> inspect.Signature:
    from eval_pipeline.scoring._code import code_execution

    return inspect.signature(code_execution)


ScorerFn = Callable[..., pl.DataFrame]

SCORERS: dict[str, ScorerFn] = {
    "exact_match": exact_match,
    "normalized_match": normalized_match,
    "numeric_match": numeric_match,
    "regex_match": regex_match,
    "json_fields": json_fields,
    "code_execution": _code_execution,
    # Validated here, run by eval_pipeline.judge through the score stage.
    "llm_judge": llm_judge,
}


def get_scorer(name: str) -> ScorerFn:
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None


def check_scorer_params(name: str, params: dict[str, Any]) -> str | None:
    """Return a problem description if ``params`` do not fit scorer ``name``, else None."""
    if name not in SCORERS:
        return f"unknown scorer '{name}' (known: {', '.join(sorted(SCORERS))})"
    sig = _code_params() if name == "code_execution" else inspect.signature(SCORERS[name])
    accepted = {p for p in list(sig.parameters)[1:]}
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
    if name == "llm_judge":
        return judge_params_problem(params)
    isolation = params.get("isolation", "bwrap")
    if name == "code_execution" and isolation not in ("bwrap", "process"):
        return f"scorer 'code_execution': isolation must be 'bwrap' or 'process', not {isolation!r}"
    return None


def run_scorer(name: str, frame: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """Run scorer ``name`` over ``frame`` and check that it returned one row per sample."""
    out = get_scorer(name)(frame, **params)
    if out.height != frame.height:
        raise RuntimeError(f"scorer {name} returned {out.height} rows for {frame.height} samples")
    return out
