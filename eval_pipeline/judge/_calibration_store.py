"""Where fitted calibrations live: one JSON file per judge x rubric under the store root.

``<store>/calibration/judge=<slug>/rubric=<rubric>.json``. A JSON file, not a Parquet
table: a calibration is one small document (the map, its evidence and the verdicts it
was fitted on) read whole by the score stage.
"""

from __future__ import annotations

import json
from pathlib import Path

# Any: calibration documents as JSON (any JSON type).
from typing import Any

from eval_pipeline.judge._fit import CalibrationResult
from eval_pipeline.storage import Store, atomic_write_text


def save_calibration(store: Store, judge: str, rubric: str, document: dict[str, Any]) -> Path:
    """Write a calibration document atomically (temp file + rename)."""
    path = store.calibration_path(judge, rubric)
    return atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True))


def load_calibration_document(store: Store, judge: str, rubric: str) -> dict[str, Any] | None:
    """The stored document, or None when the pair was never calibrated."""
    path = store.calibration_path(judge, rubric)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def load_calibration(
    store: Store, judge: str, rubric: str, rubric_version: str | None = None
) -> CalibrationResult | None:
    """The fitted calibration of ``judge`` on ``rubric``, or None.

    None as well when the calibration was refused (too few labels) or was fitted on
    another version of the rubric template than ``rubric_version``: a map learned for
    one wording of the rubric says nothing about another.
    """
    document = load_calibration_document(store, judge, rubric)
    if document is None or document.get("status") != "fitted":
        return None
    if rubric_version is not None and document.get("rubric_version") != rubric_version:
        return None
    return CalibrationResult.from_json(document["result"])
