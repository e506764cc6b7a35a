"""Cross-validated choice of a calibration map, with agreement before and after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Any: JSON documents and rows: a value may be any JSON type.
from typing import Any

import numpy as np

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.judge._maps import METHODS, CalibrationMap, Scores, fit_map
from eval_pipeline.scoring import stats

# Below this many labelled responses (with a readable verdict) a fitted map says more
# about noise than about the judge; five-fold CV would also leave folds of 3 or fewer.
MIN_LABELS = 20
FOLDS = 5
SEED = 20240607


class CalibrationError(EvalPipelineError):
    """A calibration cannot be fitted (too few labels, no usable verdicts)."""


@dataclass(frozen=True)
class Agreement:
    """Agreement of scores with human labels."""

    spearman: float | None
    kappa: float | None  # quadratic-weighted Cohen's kappa, scores rounded to the scale
    mae: float | None

    @classmethod
    def of(cls, scores: Scores, labels: Scores, low: int, high: int) -> Agreement:
        scores, labels = [float(v) for v in scores], [float(v) for v in labels]
        return cls(
            spearman=stats.spearman(scores, labels),
            kappa=stats.quadratic_weighted_kappa(scores, labels, low, high),
            mae=stats.mean_absolute_error(scores, labels),
        )

    def as_dict(self) -> dict[str, float | None]:
        return {"spearman": self.spearman, "kappa": self.kappa, "mae": self.mae}


@dataclass(frozen=True)
class CalibrationResult:
    """A chosen map with its evidence.

    ``after`` is measured on held-out folds (each label predicted by a map that never saw
    it), so it is an honest estimate rather than the fit's in-sample agreement.
    """

    map: CalibrationMap
    n: int
    before: Agreement
    after: Agreement
    cv_mae: dict[str, float]
    version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.map.method

    def apply(self, raw: Scores) -> np.ndarray:
        return self.map.apply(raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "map": self.map.to_json(),
            "n": self.n,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "cv_mae": self.cv_mae,
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CalibrationResult:
        known = {"version", "map", "n", "before", "after", "cv_mae"}
        return cls(
            map=CalibrationMap.from_json(data["map"]),
            n=data["n"],
            before=Agreement(**data["before"]),
            after=Agreement(**data["after"]),
            cv_mae=dict(data["cv_mae"]),
            version=data["version"],
            extra={k: v for k, v in data.items() if k not in known},
        )


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(k)]


def cross_validated_predictions(
    method: str, raw: np.ndarray, human: np.ndarray, folds: list[np.ndarray], low: int, high: int
) -> np.ndarray:
    """Each label's prediction from a map fitted on the other folds."""
    out = np.empty_like(human, dtype=float)
    for held in folds:
        train = np.ones(raw.size, dtype=bool)
        train[held] = False
        fitted = fit_map(method, raw[train], human[train], low, high)
        out[held] = fitted.apply(raw[held])
    return out


def fit_calibration(
    raw: Scores,
    human: Scores,
    *,
    low: int = 1,
    high: int = 5,
    methods: Sequence[str] = METHODS,
    folds: int = FOLDS,
    min_labels: int = MIN_LABELS,
    seed: int = SEED,
    label: str = "calibration",
) -> CalibrationResult:
    """Fit each method with k-fold cross-validation and keep the lowest held-out MAE.

    ``identity`` (the raw scores unchanged) competes too, so a calibration is only
    applied when it beats the judge as it is. The chosen method is then refitted on all
    labels.

    Args:
        raw: The judge's raw scores (parsed verdicts only).
        human: The human labels of the same responses.
        low: Lowest point of the scale.
        high: Highest point of the scale.
        methods: Candidate methods.
        folds: Number of cross-validation folds.
        min_labels: Refuse below this many pairs.
        seed: Seed of the fold assignment.
        label: Names the judge and rubric in error messages.

    Raises:
        CalibrationError: Fewer than ``min_labels`` pairs.
    """
    x = np.asarray(raw, dtype=float)
    y = np.asarray(human, dtype=float)
    if x.size != y.size:
        raise ValueError(f"{label}: {x.size} raw scores for {y.size} labels")
    if x.size < min_labels:
        raise CalibrationError(
            f"{label}: only {x.size} labelled responses with a readable verdict; a calibration "
            f"needs at least {min_labels}. Add labels to datasets/judge-labels/ or check why the "
            "judge's verdicts do not parse (see the judgements' status column)."
        )
    split = _folds(x.size, folds, seed)
    predictions = {m: cross_validated_predictions(m, x, y, split, low, high) for m in methods}
    cv_mae = {m: float(np.mean(np.abs(p - y))) for m, p in predictions.items()}
    # Ties go to the earlier (simpler) method in METHODS order.
    best = min(methods, key=lambda m: (round(cv_mae[m], 12), list(methods).index(m)))
    chosen = fit_map(best, x, y, low, high)
    version = (
        f"{best}@{content_hash({'map': chosen.to_json(), 'x': x.tolist(), 'y': y.tolist()}, 10)}"
    )
    return CalibrationResult(
        map=chosen,
        n=int(x.size),
        before=Agreement.of(x.tolist(), y.tolist(), low, high),
        after=Agreement.of(predictions[best].tolist(), y.tolist(), low, high),
        cv_mae=cv_mae,
        version=version,
    )


def calibrated_mean_interval(
    raw: Scores,
    document: dict[str, Any],
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """A calibrated mean's interval that carries the calibration fit's own uncertainty.

    Each bootstrap round resamples the evaluated samples' raw scores *and* the labelled
    (raw score, label) pairs the calibration was fitted on, refits the chosen method on
    the resampled labels and maps the resampled scores through it; the interval is the
    percentile interval of those means. A judge calibrated on 20 labels thus gets a wider
    interval than one calibrated on 2,000, where resampling the samples alone would show
    the same. None when the document holds no fitted calibration or no scores are given.

    Args:
        raw: The samples' raw judge scores (readable verdicts only).
        document: The stored calibration document (its ``result`` and ``verdicts``).
        confidence: Coverage of the interval.
        resamples: Bootstrap rounds.
        seed: Seed of the resampling.
    """
    if document.get("status") != "fitted" or not raw:
        return None
    result = CalibrationResult.from_json(document["result"])
    pairs = [
        (float(v["score"]), float(v["label"]))
        for v in document.get("verdicts", [])
        if v.get("score") is not None
    ]
    if not pairs:
        return None
    x = np.asarray([p[0] for p in pairs])
    y = np.asarray([p[1] for p in pairs])
    scores = np.asarray(raw, dtype=float)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        pick = rng.integers(0, x.size, x.size)
        fitted = fit_map(result.method, x[pick], y[pick], result.map.low, result.map.high)
        sample = scores[rng.integers(0, scores.size, scores.size)]
        means.append(float(np.mean(fitted.apply(sample))))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
