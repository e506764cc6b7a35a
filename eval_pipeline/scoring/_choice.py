"""Multiple-choice scorers: ``acc``, ``acc_norm`` and ``acc_bytes`` as lm-evaluation-harness.

The frame carries, per sample, ``choices`` (the choice texts), ``targets`` (the correct
ones) and either ``choice_logprobs`` (the log-likelihood of each continuation, in choice
order: ``mode: loglikelihood``) or a ``completion`` that should be one letter
(``mode: generate``, see :func:`parse_letter`).

As lm-evaluation-harness (``ConfigurableTask.process_results``) computes them:

- ``acc``: the choice of highest log-likelihood is correct (first on ties, as
  ``numpy.argmax``);
- ``acc_norm``: the same after dividing each log-likelihood by the length of the
  choice's text in characters (``len(choice)``; the target delimiter is not counted);
- ``acc_bytes``: dividing by the length of the choice's text in UTF-8 bytes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import polars as pl

from eval_pipeline.core.types import ChoiceScores

LETTERS = string.ascii_uppercase
# One capital letter, optionally in parentheses or followed by "." or ")", optionally after
# "Answer:"; or one lowercase letter alone. Nothing else: a reply that explains itself is
# not parsed.
_LETTER = re.compile(r"^\s*(?:[Aa]nswer\s*:?\s*)?\(?([A-Z])\)?[.:)]?\s*$")
_LONE = re.compile(r"^\s*\(?([a-z])\)?[.)]?\s*$")


def parse_letter(reply: str | None, n_choices: int) -> int | None:
    """The choice index a reply names (``"B"``, ``"(b)"``, ``"Answer: B."``), else None.

    Strict on purpose: a reply that is not one letter among the first ``n_choices`` is
    unparseable, and is scored as wrong with that reason.
    """
    match = _LETTER.match(reply or "") or _LONE.match(reply or "")
    if not match:
        return None
    index = LETTERS.index(match.group(1).upper())
    return index if index < n_choices else None


def _choice_scorer(
    frame: pl.DataFrame, length: Callable[[str], float] | None, name: str
) -> pl.DataFrame:
    values: list[float | None] = []
    details: list[str] = []
    logprobs_col = (
        frame["choice_logprobs"].to_list()
        if "choice_logprobs" in frame.columns
        else [None] * frame.height
    )
    rows = zip(
        frame["completion"].to_list(),
        frame["choices"].to_list(),
        frame["targets"].to_list(),
        logprobs_col,
        strict=True,
    )
    for completion, choices, targets, logprobs in rows:
        choices = list(choices or [])
        targets = set(targets or [])
        if logprobs is not None:
            scores = ChoiceScores.from_columns(logprobs, choices=choices)
            if length is not None:
                scores = scores.normalized(length)
            picked = scores.best()
            hit = choices[picked] in targets
            values.append(float(hit))
            details.append(
                "" if hit else f"picked {choices[picked]!r}, correct {sorted(targets)!r}"
            )
        elif completion is None:
            values.append(0.0)
            details.append("no completion")
        elif length is not None:
            values.append(None)  # a written letter has no log-likelihoods to normalize
            details.append(f"{name} needs log-likelihoods (mode: generate)")
        else:
            picked_index = parse_letter(completion, len(choices))
            if picked_index is None:
                values.append(0.0)
                details.append(f"unparseable: expected one letter A-{LETTERS[len(choices) - 1]}")
                continue
            hit = choices[picked_index] in targets
            values.append(float(hit))
            details.append(
                "" if hit else f"picked {choices[picked_index]!r}, correct {sorted(targets)!r}"
            )
    return pl.DataFrame(
        {"sample_id": frame["sample_id"], "value": values, "detail": details},
        schema={"sample_id": pl.String, "value": pl.Float64, "detail": pl.String},
    )


def acc(frame: pl.DataFrame) -> pl.DataFrame:
    """1.0 when the most likely choice (or the letter written) is a correct one."""
    return _choice_scorer(frame, None, "acc")


def acc_norm(frame: pl.DataFrame) -> pl.DataFrame:
    """1.0 when the choice of highest log-likelihood per character is a correct one."""
    return _choice_scorer(frame, lambda c: float(len(c)), "acc_norm")


def acc_bytes(frame: pl.DataFrame) -> pl.DataFrame:
    """1.0 when the choice of highest log-likelihood per UTF-8 byte is a correct one."""
    return _choice_scorer(frame, lambda c: float(len(c.encode("utf-8"))), "acc_bytes")
