"""Where fitted calibrations live: one JSON file per judge x rubric under the store root.

``<store>/calibration/judge=<slug>/rubric=<rubric>.json``. A JSON file, not a Parquet
table: a calibration is one small document (the map, its evidence and the verdicts it
was fitted on) read whole by the score stage.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from eval_pipeline.calibration._fit import CalibrationResult
from eval_pipeline.storage import Store


def calibration_path(store: Store, judge: str, rubric: str) -> Path:
    """The file holding the calibration of ``judge`` on ``rubric``."""
    return store.root / "calibration" / f"judge={judge}" / f"rubric={rubric}.json"


def stored_pairs(store: Store) -> list[tuple[str, str]]:
    """Every (judge, rubric) with a stored calibration, sorted."""
    files = (store.root / "calibration").glob("judge=*/rubric=*.json")
    return sorted(
        (f.parent.name.removeprefix("judge="), f.stem.removeprefix("rubric=")) for f in files
    )


def save_calibration(store: Store, judge: str, rubric: str, document: dict[str, Any]) -> Path:
    """Write a calibration document atomically (temp file + rename)."""
    path = calibration_path(store, judge, rubric)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_calibration_document(store: Store, judge: str, rubric: str) -> dict[str, Any] | None:
    """The stored document, or None when the pair was never calibrated."""
    path = calibration_path(store, judge, rubric)
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
