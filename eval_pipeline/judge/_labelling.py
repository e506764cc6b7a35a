"""Human labels for judge calibration: an interactive rating session.

A rater scores the calibration responses of one rubric on its 1-5 anchors; every rating
is appended to ``datasets/judge-labels/human.jsonl`` at once (flushed and synced), so a
session can stop at any point and resume later where it left off. Once a rubric has
human ratings, calibration uses them instead of the rule-assigned labels
(:func:`eval_pipeline.judge.load_labels`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Any: label rows as JSON (any JSON type).
from typing import Any

from eval_pipeline.core.errors import CatalogError, EvalPipelineError
from eval_pipeline.core.keys import validate_slug
from eval_pipeline.judge._rubrics import SCALE, discover_rubrics, rubric_prompt

LABELS_DIR = Path("datasets") / "judge-labels"
RULE_LABELS_FILE = LABELS_DIR / "labels.jsonl"
HUMAN_LABELS_FILE = LABELS_DIR / "human.jsonl"

_ANCHOR = re.compile(r"^\s*([1-5])\s*=\s*(.+)$")


@dataclass(frozen=True)
class LabelSession:
    """What one rating session did."""

    rubric: str
    rater: str
    labelled: int
    skipped: int
    remaining: int
    path: Path


def read_jsonl(path: Path, shown: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line of a labels file (none if absent).

    Raises:
        CatalogError: A line is not a JSON object.
    """
    if not path.exists():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CatalogError(shown, f"line {lineno}", f"not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise CatalogError(shown, f"line {lineno}", "expected a JSON object")
        rows.append((lineno, row))
    return rows


def rubric_anchors(root: str | Path, rubric: str) -> list[str]:
    """The rubric's anchored descriptions (``5 = fully helpful: ...``), best first."""
    text = rubric_prompt(root, rubric).text
    return [
        f"{m.group(1)} = {m.group(2).strip()}" for m in map(_ANCHOR.match, text.splitlines()) if m
    ]


def responses_to_label(root: str | Path, rubric: str) -> list[dict[str, Any]]:
    """The calibration responses of ``rubric``: id, question, reference and answer."""
    seen: dict[str, dict[str, Any]] = {}
    for _, row in read_jsonl(Path(root) / RULE_LABELS_FILE, str(RULE_LABELS_FILE)):
        if row.get("rubric") == rubric and row.get("id") not in seen:
            seen[str(row["id"])] = {
                "id": str(row["id"]),
                "question": row.get("question", ""),
                "reference": row.get("reference", ""),
                "answer": row.get("answer", ""),
            }
    return list(seen.values())


def label_session(
    root: str | Path,
    rubric: str,
    rater: str,
    *,
    ask: Callable[[str], str | None],
    say: Callable[[str], None],
    limit: int | None = None,
) -> LabelSession:
    """Ask ``rater`` for a 1-5 rating of each response they have not rated yet.

    Args:
        root: Project root.
        rubric: Which rubric to rate on.
        rater: The rater's name (a slug); stored as ``labelled_by: "human:<rater>"``.
        ask: Shows a prompt and returns the answer, or None at end of input.
        say: Shows a line of text.
        limit: Stop after this many ratings.

    Answers: ``1``-``5`` rate, ``s`` skips (asked again next session), ``q`` quits.
    Anything else is asked again.

    Raises:
        EvalPipelineError: Unknown rubric or a bad rater name.
    """
    known = discover_rubrics(root)
    if rubric not in known:
        raise EvalPipelineError(f"unknown rubric {rubric!r} (known: {', '.join(known)})")
    problem = validate_slug(rater)
    if problem:
        raise EvalPipelineError(f"rater name: {problem}")
    path = Path(root) / HUMAN_LABELS_FILE
    done = {
        str(row.get("id"))
        for _, row in read_jsonl(path, str(HUMAN_LABELS_FILE))
        if row.get("rubric") == rubric and row.get("labelled_by") == f"human:{rater}"
    }
    todo = [r for r in responses_to_label(root, rubric) if r["id"] not in done]
    anchors = rubric_anchors(root, rubric)
    labelled = skipped = 0
    for position, response in enumerate(todo, start=1):
        if limit is not None and labelled >= limit:
            break
        say("")
        say(f"[{position}/{len(todo)}] {rubric} - {response['id']}")
        say(f"Question:  {response['question']}")
        say(f"Reference: {response['reference']}")
        say(f"Answer:    {response['answer']}")
        for anchor in anchors:
            say(f"  {anchor}")
        answer = _ask_rating(ask, say)
        if answer is None or answer == "q":
            break
        if answer == "s":
            skipped += 1
            continue
        _append(
            path,
            {
                **response,
                "rubric": rubric,
                "label": int(answer),
                "labelled_by": f"human:{rater}",
                "labelled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        labelled += 1
    return LabelSession(
        rubric=rubric,
        rater=rater,
        labelled=labelled,
        skipped=skipped,
        remaining=len(todo) - labelled,
        path=path,
    )


def _ask_rating(ask: Callable[[str], str | None], say: Callable[[str], None]) -> str | None:
    valid = {str(s) for s in range(SCALE[0], SCALE[1] + 1)}
    while True:
        answer = ask(f"rating {SCALE[0]}-{SCALE[1]} (s skip, q quit): ")
        if answer is None:
            return None
        answer = answer.strip().lower()
        if answer in valid or answer in ("s", "q"):
            return answer
        say(f"  '{answer}' is not a rating; type {SCALE[0]}-{SCALE[1]}, s or q")


def _append(path: Path, row: dict[str, Any]) -> None:
    # One whole line per rating, synced: a killed session loses at most the rating being typed.
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
