"""Slugs and the model x dataset partition key."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Checked with ``fullmatch``: ``$`` alone would accept a trailing newline ("name\n").
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")

# Dagster orders the dimensions of a multi-partition key by name: "dataset|model".
DIMENSIONS = ("dataset", "model")


def validate_slug(value: str) -> str | None:
    """Return a problem description if ``value`` is not a valid slug, else None."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if not SLUG_RE.fullmatch(value):
        bad = sorted({c for c in value if not re.fullmatch(r"[a-z0-9._-]", c)})
        shown = ", ".join(repr(c) for c in bad) if bad else "its first character"
        return (
            f"{value!r} is not a slug (lowercase letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit); offending: {shown}"
        )
    return None


def require_slug(value: str) -> str:
    """``value`` if it is a valid slug; else ValueError saying why (for pydantic validators)."""
    problem = validate_slug(value)
    if problem:
        raise ValueError(problem)
    return value


@dataclass(frozen=True)
class PartitionKey:
    """One cell of the model x dataset grid."""

    model: str
    dataset: str

    @property
    def key(self) -> str:
        """The Dagster multi-partition key string (dimension names sorted)."""
        return f"{self.dataset}|{self.model}"

    @classmethod
    def parse(cls, key: str) -> PartitionKey:
        """Parse ``dataset|model`` into a key; both parts must be slugs."""
        dataset, sep, model = key.partition("|")
        if not sep or not dataset or not model:
            raise ValueError(f"partition key {key!r} is not of the form 'dataset|model'")
        for dimension, value in (("dataset", dataset), ("model", model)):
            problem = validate_slug(value)
            if problem:
                raise ValueError(f"partition key {key!r}: {dimension} {problem}")
        return cls(model=model, dataset=dataset)


# Several completions of one problem: completion ``i`` of problem ``P`` is the sample
# ``P#i``. Generation writes these ids, scoring joins them back to their problem and
# pass@k groups by it; this is the one place that knows the convention.
PROBLEM_SEPARATOR = "#"


def problem_id(sample_id: str) -> str:
    """The problem a sample belongs to: ``HumanEval/3#2`` -> ``HumanEval/3``.

    An id without the separator is its own problem.
    """
    return sample_id.split(PROBLEM_SEPARATOR, 1)[0]
