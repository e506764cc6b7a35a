"""Rubric templates (``prompts/judge-<rubric>.jinja``) and the judge scorer's parameters."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval_pipeline.catalog import PromptTemplate, load_prompt

# The rubrics the project ships; a project adds its own by adding a template (see
# discover_rubrics).
RUBRICS = ("coherence", "relevance", "factual-accuracy", "grammar", "helpfulness")
SCALE = (1, 5)
_RUBRIC = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
JUDGE_SCORER = "llm_judge"


class JudgeParams(BaseModel):
    """Parameters of an ``llm_judge`` scorer in a dataset spec.

    Example::

        - name: llm_judge
          metric: helpfulness
          params: {rubric: helpfulness, judges: [smollm2-135m], max_tokens: 40}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rubric: str
    judges: list[str] = Field(min_length=1)
    max_tokens: int = Field(64, ge=8, le=2048)
    question_field: str = "question"

    @field_validator("rubric")
    @classmethod
    def _known(cls, value: str) -> str:
        # Whether the template exists is the catalog's check (it knows the project root).
        if not _RUBRIC.match(value):
            raise ValueError(f"rubric {value!r} is not a slug (prompts/judge-<rubric>.jinja)")
        return value

    @field_validator("judges")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"judges must be unique, got {value}")
        return value


class MtBenchParams(BaseModel):
    """Parameters of an ``mt_bench`` scorer: MT-Bench's single-answer grading, per turn.

    Example::

        - name: mt_bench
          metric: mt-bench
          params: {judges: [smollm2-135m], max_tokens: 256}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: list[str] = Field(min_length=1)
    max_tokens: int = Field(256, ge=8, le=4096)


def discover_rubrics(root: str | Path) -> list[str]:
    """The rubrics a project has: every ``prompts/judge-<rubric>.jinja`` under ``root``.

    Adding a rubric is adding a template; no code lists them.
    """
    prompts = Path(root) / "prompts"
    return sorted(p.name[len("judge-") : -len(".jinja")] for p in prompts.glob("judge-*.jinja"))


def rubric_prompt(root: str | Path, rubric: str) -> PromptTemplate:
    """Load ``prompts/judge-<rubric>.jinja`` under the project ``root``.

    Its version (``judge-<rubric>@<hash>``) is the rubric version every verdict records.
    """
    root = Path(root)
    return load_prompt(root / "prompts", f"judge-{rubric}", root)


def judge_metric_names(metric: str, params: JudgeParams) -> list[str]:
    """The score metrics one ``llm_judge`` scorer writes.

    ``<metric>`` is the raw 1-5 score (the mean over judges when there are several),
    ``<metric>:<judge>`` each judge's own score when there are several, and
    ``<metric>:calibrated`` the calibrated score (null where no calibration applies).
    """
    names = [metric]
    if len(params.judges) > 1:
        names += [f"{metric}:{j}" for j in params.judges]
    names.append(f"{metric}:calibrated")
    return names
