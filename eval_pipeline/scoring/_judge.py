"""The ``llm_judge`` scorer's parameters, known here so the catalog can validate them.

Judging calls models, which this pure layer never does: the score stage hands
``llm_judge`` scorers to :mod:`eval_pipeline.judge`.
"""

from __future__ import annotations

import re

import polars as pl

# The rubrics the project ships (``prompts/judge-<rubric>.jinja``). A project adds its own
# by adding a template: the catalog discovers ``prompts/judge-*.jinja`` and checks that a
# dataset's rubric has one.
JUDGE_RUBRICS = ("coherence", "relevance", "factual-accuracy", "grammar", "helpfulness")
_RUBRIC_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def llm_judge(
    frame: pl.DataFrame,
    rubric: str,
    judges: list[str],
    max_tokens: int = 64,
    question_field: str = "question",
) -> pl.DataFrame:
    """Rate completions 1-5 on ``rubric`` with the catalog models ``judges``.

    Runs only through the score stage (it needs the catalog and the response cache).
    """
    raise RuntimeError(
        "llm_judge calls judge models; it runs through eval_pipeline.stages.score, not run_scorer"
    )


def judge_params_problem(params: dict) -> str | None:
    """A problem with an ``llm_judge`` scorer's parameters, or None."""
    rubric = params.get("rubric")
    if not isinstance(rubric, str) or not _RUBRIC_NAME.match(rubric):
        return (
            f"scorer 'llm_judge': rubric {rubric!r} must be the slug of a template "
            "prompts/judge-<rubric>.jinja"
        )
    judges = params.get("judges")
    if not isinstance(judges, list) or not judges or not all(isinstance(j, str) for j in judges):
        return "scorer 'llm_judge': judges must be a non-empty list of model slugs"
    return None
