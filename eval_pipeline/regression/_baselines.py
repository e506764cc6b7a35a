"""Named, pinned baselines: earlier results kept as files in the repository.

``baselines/<name>/`` holds ``scores.parquet`` (rows of the ``scores`` table, every
partition the baseline covers) and ``baseline.json`` (what it is, where it came from, and
the regression settings to judge new runs by). A baseline changes only when someone pins
a new one and commits it, so a regression gate compares against a reviewed reference.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.keys import validate_slug
from eval_pipeline.core.schemas import SCORES
from eval_pipeline.regression._run_vs_baseline import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from eval_pipeline.storage import Store, conform, with_missing_columns

BASELINES_DIR = "baselines"
DEFAULT_BASELINE = "main"
BASELINE_ENV = "EVAL_PIPELINE_BASELINE"


class BaselineError(EvalPipelineError):
    """A baseline is missing or unreadable."""


@dataclass(frozen=True)
class Baseline:
    """A pinned baseline: its scores and its manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]
    scores: pl.DataFrame

    @property
    def alpha(self) -> float:
        return float(self.manifest.get("alpha", DEFAULT_ALPHA))

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("threshold", DEFAULT_THRESHOLD))

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.manifest.get("thresholds", {}).items()}


def baseline_name() -> str:
    """The baseline the checks and the report use: ``$EVAL_PIPELINE_BASELINE`` or ``main``."""
    return os.environ.get(BASELINE_ENV) or DEFAULT_BASELINE


def baseline_dir(root: str | Path, name: str) -> Path:
    return Path(root) / BASELINES_DIR / name


def load_baseline(root: str | Path, name: str) -> Baseline:
    """Read ``baselines/<name>/`` under the project ``root``.

    Raises:
        BaselineError: The baseline does not exist or its files are unreadable.
    """
    folder = baseline_dir(root, name)
    manifest_path, scores_path = folder / "baseline.json", folder / "scores.parquet"
    if not manifest_path.exists() or not scores_path.exists():
        known = ", ".join(baseline_names(root)) or "none"
        raise BaselineError(
            f"no baseline {name!r} at {folder} (known baselines: {known}); "
            "pin one with `eval-pipeline baseline pin <name>`"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        scores = conform("scores", with_missing_columns("scores", pl.read_parquet(scores_path)))
    except Exception as exc:  # a damaged file: name it
        raise BaselineError(f"baseline {name!r} at {folder} is unreadable: {exc}") from exc
    return Baseline(name=name, path=folder, manifest=manifest, scores=scores)


def baseline_names(root: str | Path) -> list[str]:
    """Every baseline under ``root/baselines``."""
    folder = Path(root) / BASELINES_DIR
    if not folder.exists():
        return []
    return sorted(p.parent.name for p in folder.glob("*/baseline.json"))


def pin_baseline(
    store: Store,
    root: str | Path,
    name: str,
    *,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
    description: str = "",
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """Copy the store's current scores (optionally some models/datasets) into a baseline.

    Raises:
        BaselineError: The name is not a slug or there are no scores to pin.
    """
    problem = validate_slug(name)
    if problem:
        raise BaselineError(f"baseline name: {problem}")
    scores = store.scan("scores").collect()
    if models:
        scores = scores.filter(pl.col("model").is_in(models))
    if datasets:
        scores = scores.filter(pl.col("dataset").is_in(datasets))
    if scores.height == 0:
        raise BaselineError(f"no scores in {store.root} for the selection; nothing to pin")
    scores = conform("scores", scores.select(SCORES.names())).sort(
        ["model", "dataset", "metric", "sample_id"]
    )
    folder = baseline_dir(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(folder / "scores.parquet", compression="zstd")
    partitions = sorted({f"{d}|{m}" for d, m in scores.select("dataset", "model").iter_rows()})
    manifest = {
        "name": name,
        "description": description,
        "pinned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_store": str(store.root),
        "code_version": code_version(),
        "partitions": partitions,
        "prompt_versions": sorted(set(scores["prompt_version"].to_list())),
        "rows": scores.height,
        "alpha": alpha,
        "threshold": threshold,
        "thresholds": thresholds or {},
    }
    (folder / "baseline.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
