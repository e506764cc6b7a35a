"""Text scorers: exact, normalized, numeric and regex matches."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence

import polars as pl

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def normalize_text(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace (SQuAD-style)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_number(text: str) -> float | None:
    """Parse ``text`` as a number (commas as thousands separators allowed)."""
    try:
        return float(text.strip().replace(",", ""))
    except (ValueError, AttributeError):
        return None


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (answers usually end with it)."""
    found = _NUMBER.findall(text or "")
    return parse_number(found[-1]) if found else None


def _result(
    sample_ids: list[str], values: Sequence[float | None], details: list[str]
) -> pl.DataFrame:
    return pl.DataFrame(
        {"sample_id": sample_ids, "value": values, "detail": details},
        schema={"sample_id": pl.String, "value": pl.Float64, "detail": pl.String},
    )


def targets_of(frame: pl.DataFrame) -> list[list[str]]:
    """Every acceptable answer per row: the ``targets`` list where given, else ``[target]``."""
    singles = frame["target"].to_list()
    if "targets" not in frame.columns:
        return [[t or ""] for t in singles]
    return [
        list(many) if many else [one or ""]
        for many, one in zip(frame["targets"].to_list(), singles, strict=True)
    ]


def exact_match(frame: pl.DataFrame) -> pl.DataFrame:
    """1.0 when the stripped completion equals a stripped target (any of ``targets``)."""

    def match(completion: str, wanted: list[str]) -> tuple[bool, list[str]]:
        return any(completion.strip() == t.strip() for t in wanted), wanted

    return _match_targets(frame, match)


def normalized_match(frame: pl.DataFrame, contains: bool = False) -> pl.DataFrame:
    """1.0 when normalized completion equals (or, with ``contains``, holds) a normalized target.

    Any of the row's ``targets`` counts. With ``contains`` the target must appear as
    whole words, so "12" does not match "123".
    """

    def match(completion: str, wanted: list[str]) -> tuple[bool, list[str]]:
        got = normalize_text(completion)
        wants = [normalize_text(t) for t in wanted]
        hit = any(bool(w) and (f" {w} " in f" {got} " if contains else got == w) for w in wants)
        return hit, wants

    return _match_targets(frame, match)


def _match_targets(
    frame: pl.DataFrame, match: Callable[[str, list[str]], tuple[bool, list[str]]]
) -> pl.DataFrame:
    """Score each completion against its targets with ``match``: (hit, the targets shown).

    A missing completion scores 0; a miss's detail names the expected targets.
    """
    values, details = [], []
    for completion, wanted in zip(frame["completion"], targets_of(frame), strict=True):
        if completion is None:
            values.append(0.0)
            details.append("no completion")
            continue
        hit, shown = match(completion, wanted)
        values.append(float(hit))
        details.append("" if hit else f"expected {_one_of(shown)}")
    return _result(frame["sample_id"].to_list(), values, details)


def _one_of(wanted: list[str]) -> str:
    return repr(wanted[0]) if len(wanted) == 1 else f"one of {wanted!r}"


def numeric_match(
    frame: pl.DataFrame, tolerance: float = 1e-6, relative: bool = False
) -> pl.DataFrame:
    """Compare the last number in the completion with a numeric target.

    Null (not applicable) where the target is not a number.
    """
    values: list[float | None] = []
    details: list[str] = []
    for completion, target in zip(frame["completion"], frame["target"], strict=True):
        want = parse_number(target or "")
        if want is None:
            values.append(None)
            details.append("target is not numeric")
            continue
        got = last_number(completion or "")
        if got is None:
            values.append(0.0)
            details.append("no number in completion")
            continue
        bound = tolerance * max(abs(want), 1e-12) if relative else tolerance
        hit = math.isclose(got, want, rel_tol=0, abs_tol=bound)
        values.append(float(hit))
        details.append("" if hit else f"got {got:g}, expected {want:g}")
    return _result(frame["sample_id"].to_list(), values, details)


def regex_match(
    frame: pl.DataFrame, pattern: str, group: int = 1, normalize: bool = True
) -> pl.DataFrame:
    """Extract the answer with ``pattern`` (first match, ``group``) and compare with the target."""
    compiled = re.compile(pattern, re.IGNORECASE | re.DOTALL)
    values, details = [], []
    for completion, target in zip(frame["completion"], frame["target"], strict=True):
        match = compiled.search(completion or "")
        if match is None:
            values.append(0.0)
            details.append("pattern not found")
            continue
        got = match.group(group) if compiled.groups >= group else match.group(0)
        want = target or ""
        if normalize:
            got, want = normalize_text(got), normalize_text(want)
        hit = got == want
        values.append(float(hit))
        details.append("" if hit else f"extracted {got!r}, expected {want!r}")
    return _result(frame["sample_id"].to_list(), values, details)
