"""Human labels from the files people have: pointwise and pairwise ratings, JSONL or CSV.

Pointwise rows (``prompt``, ``response``, ``rubric``, ``score``, ``rater``) join the
interactive ratings in ``datasets/judge-labels/human.jsonl``, so a rubric's calibration
uses them (:func:`eval_pipeline.judge.load_labels`). Pairwise rows (``prompt``,
``answer_a``, ``answer_b``, ``preferred``: ``A``, ``B`` or ``tie``, ``rater``) go to
``datasets/judge-labels/pairwise.jsonl``. Every row is checked before anything is
written; the first problem is raised naming the file, the line and the field, and the
labels files are rewritten atomically, so a bad file leaves them as they were.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.keys import validate_slug
from eval_pipeline.judge._labelling import HUMAN_LABELS_FILE, LABELS_DIR, read_jsonl
from eval_pipeline.judge._rubrics import SCALE, discover_rubrics
from eval_pipeline.storage import atomic_write_text

PAIRWISE_LABELS_FILE = LABELS_DIR / "pairwise.jsonl"
POINTWISE_FIELDS = ("prompt", "response", "rubric", "score", "rater")
PAIRWISE_FIELDS = ("prompt", "answer_a", "answer_b", "preferred", "rater")
PREFERENCES = ("A", "B", "tie")


@dataclass(frozen=True)
class LabelImport:
    """What an import did: the kind of labels, rows read, rows added (new ones), where."""

    kind: str
    rows: int
    added: int
    path: Path


def _rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    shown = str(path)
    if not path.is_file():
        raise CatalogError(shown, "", "no such file")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            # The header is line 1: data rows start at line 2.
            return [(i, dict(row)) for i, row in enumerate(reader, start=2)]
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_jsonl(path, shown)
    raise CatalogError(shown, "", "expected a .jsonl or .csv file")


def _text(row: dict[str, object], field: str, shown: str, line: int) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(shown, f"line {line}: {field}", "must be a non-empty string")
    return value


def _rater(row: dict[str, object], shown: str, line: int) -> str:
    rater = _text(row, "rater", shown, line)
    problem = validate_slug(rater)
    if problem:
        raise CatalogError(shown, f"line {line}: rater", problem)
    return rater


def import_labels(root: str | Path, path: str | Path) -> LabelImport:
    """Validate ``path`` and add its labels to the project's labels files.

    The kind is read from the first row's fields: pointwise (``score``) or pairwise
    (``preferred``). Rows already imported (same content and rater) are not added twice.

    Raises:
        CatalogError: The file is missing or of another type, a row lacks a field or has a
            bad value (named with its line), or it mixes the two kinds.
    """
    root, path = Path(root), Path(path)
    shown = str(path)
    rows = _rows(path)
    if not rows:
        raise CatalogError(shown, "", "no rows")
    pointwise = "score" in rows[0][1]
    expected = POINTWISE_FIELDS if pointwise else PAIRWISE_FIELDS
    rubrics = discover_rubrics(root)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out: list[dict[str, object]] = []
    for line, row in rows:
        missing = [f for f in expected if f not in row]
        if missing:
            kind = "pointwise" if pointwise else "pairwise"
            raise CatalogError(
                shown,
                f"line {line}: {missing[0]}",
                f"missing (a {kind} label has {', '.join(expected)})",
            )
        rater = _rater(row, shown, line)
        prompt = _text(row, "prompt", shown, line)
        if pointwise:
            rubric = _text(row, "rubric", shown, line)
            if rubric not in rubrics:
                raise CatalogError(
                    shown,
                    f"line {line}: rubric",
                    f"unknown rubric {rubric!r} (known: {', '.join(rubrics)})",
                )
            score = _score(row.get("score"), shown, line, csv_text=path.suffix.lower() == ".csv")
            response = _text(row, "response", shown, line)
            out.append(
                {
                    "id": "import-" + content_hash([prompt, response], 12),
                    "rubric": rubric,
                    "question": prompt,
                    "reference": "",
                    "answer": response,
                    "label": score,
                    "labelled_by": f"human:{rater}",
                    "labelled_at": now,
                    "source": path.name,
                }
            )
        else:
            preferred = row.get("preferred")
            if preferred not in PREFERENCES:
                raise CatalogError(
                    shown, f"line {line}: preferred", f"must be A, B or tie, got {preferred!r}"
                )
            a, b = _text(row, "answer_a", shown, line), _text(row, "answer_b", shown, line)
            out.append(
                {
                    "id": "import-" + content_hash([prompt, a, b], 12),
                    "prompt": prompt,
                    "answer_a": a,
                    "answer_b": b,
                    "preferred": preferred,
                    "labelled_by": f"human:{rater}",
                    "labelled_at": now,
                    "source": path.name,
                }
            )
    target = root / (HUMAN_LABELS_FILE if pointwise else PAIRWISE_LABELS_FILE)
    existing = [r for _, r in read_jsonl(target, str(target))]
    seen = {(r.get("id"), r.get("labelled_by"), r.get("rubric")) for r in existing}
    added = [r for r in out if (r["id"], r["labelled_by"], r.get("rubric")) not in seen]
    if added:
        lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in existing + added]
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, "\n".join(lines) + "\n")
    return LabelImport(
        kind="pointwise" if pointwise else "pairwise", rows=len(out), added=len(added), path=target
    )


def _score(value: object, shown: str, line: int, *, csv_text: bool) -> int:
    # CSV gives text: "4" is a score there; JSON must give the integer itself.
    if csv_text and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not SCALE[0] <= value <= SCALE[1]:
        raise CatalogError(
            shown, f"line {line}: score", f"must be an integer {SCALE[0]}-{SCALE[1]}, got {value!r}"
        )
    return value
