"""Strict parsing of a judge's structured verdict.

The rubric templates ask for exactly one JSON object, ``{"score": <1-5>, "reason": "..."}``.
Anything else is recorded with a status saying what was wrong and no score: a verdict
that cannot be read is never turned into a number by guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

OK = "ok"
MALFORMED = "malformed"
OUT_OF_RANGE = "out_of_range"
NO_RESPONSE = "no_response"

# A whole reply wrapped in one Markdown code fence (```json ... ```); models add it often
# enough that refusing it would only measure formatting habits.
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """One parsed verdict.

    Attributes:
        status: ``ok``, ``malformed`` (not a JSON object with an integer ``score``),
            ``out_of_range`` (an integer outside the scale) or ``no_response`` (the judge
            call failed or the judged sample has no completion).
        score: The score when ``status`` is ``ok``, else None.
        reason: The judge's stated reason (may be empty).
        problem: What was wrong, for every status but ``ok``.
    """

    status: str
    score: int | None
    reason: str = ""
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def parse_verdict(text: str | None, low: int = 1, high: int = 5) -> Verdict:
    """Parse a judge reply into a :class:`Verdict`.

    Accepted: a reply that is, after trimming whitespace and at most one enclosing code
    fence, a single JSON object whose ``score`` is an integer (JSON ``4``, not ``"4"`` or
    ``4.5``); ``reason`` is optional and other keys are ignored.

    Args:
        text: The judge's completion (None when the call failed).
        low: Lowest score on the scale.
        high: Highest score on the scale.

    Returns:
        The verdict; never raises on bad input.
    """
    if text is None:
        return Verdict(NO_RESPONSE, None, problem="no completion to parse")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        return Verdict(MALFORMED, None, problem="empty reply")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return Verdict(MALFORMED, None, problem=f"not a JSON object ({exc.msg})")
    if not isinstance(data, dict):
        return Verdict(
            MALFORMED, None, problem=f"expected a JSON object, got {type(data).__name__}"
        )
    reason = data.get("reason", "")
    reason = reason if isinstance(reason, str) else json.dumps(reason)
    if "score" not in data:
        return Verdict(MALFORMED, None, reason, problem="no 'score' key")
    score = data["score"]
    # bool is an int subclass in Python; true/false is not a score.
    if isinstance(score, bool) or not isinstance(score, int):
        return Verdict(MALFORMED, None, reason, problem=f"score must be an integer, got {score!r}")
    if not low <= score <= high:
        return Verdict(OUT_OF_RANGE, None, reason, problem=f"score {score} outside {low}..{high}")
    return Verdict(OK, score, reason)
