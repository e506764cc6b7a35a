"""JSON extraction scoring: field-level match of a JSON object in the completion."""

from __future__ import annotations

import json
import re

import polars as pl

from eval_pipeline.scoring._text import _result, normalize_text

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json_object(text: str) -> dict | None:
    """Find the first JSON object in ``text`` (inside a code fence or bare)."""
    candidates = [m.group(1) for m in _FENCE.finditer(text or "")] + [text or ""]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char != "{":
                continue
            try:
                value, _ = decoder.raw_decode(candidate[start:])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _same(got: object, want: object) -> bool:
    if isinstance(want, int | float) and not isinstance(want, bool):
        try:
            return abs(float(got) - float(want)) < 1e-9  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return normalize_text(str(got)) == normalize_text(str(want))


def json_fields(frame: pl.DataFrame, all_or_nothing: bool = False) -> pl.DataFrame:
    """Fraction of the target object's fields that the extracted object matches.

    The target is a JSON object; string values compare after normalization, numbers
    numerically. With ``all_or_nothing`` the score is 1.0 only when every field matches.
    """
    values, details = [], []
    for completion, target in zip(frame["completion"], frame["target"], strict=True):
        want = json.loads(target)
        got = extract_json_object(completion or "")
        if got is None:
            values.append(0.0)
            details.append("no JSON object in completion")
            continue
        wrong = [k for k, v in want.items() if k not in got or not _same(got[k], v)]
        frac = 1.0 - len(wrong) / max(len(want), 1)
        values.append(float(not wrong) if all_or_nothing else frac)
        details.append(f"mismatched: {', '.join(wrong)}" if wrong else "")
    return _result(frame["sample_id"].to_list(), values, details)
