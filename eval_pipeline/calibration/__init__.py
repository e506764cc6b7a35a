"""Calibrating judge scores against human labels.

Fits isotonic (PAV), Platt-style (sigmoid) and linear maps from raw judge scores to the
human 1-5 scale, chooses one by cross-validated mean absolute error, and reports
agreement (Spearman, quadratic-weighted Cohen's kappa, MAE) before and after.
"""

from eval_pipeline.calibration._fit import (
    MIN_LABELS,
    Agreement,
    CalibrationError,
    CalibrationResult,
    cross_validated_predictions,
    fit_calibration,
)
from eval_pipeline.calibration._maps import (
    METHODS,
    CalibrationMap,
    fit_isotonic,
    fit_linear,
    fit_map,
    fit_platt,
    pool_adjacent_violators,
)
from eval_pipeline.calibration._store import (
    load_calibration,
    load_calibration_document,
    save_calibration,
)

__all__ = [
    "METHODS",
    "MIN_LABELS",
    "Agreement",
    "CalibrationError",
    "CalibrationMap",
    "CalibrationResult",
    "cross_validated_predictions",
    "fit_calibration",
    "fit_isotonic",
    "fit_linear",
    "fit_map",
    "fit_platt",
    "load_calibration",
    "load_calibration_document",
    "pool_adjacent_violators",
    "save_calibration",
]
