"""Monotone maps from raw judge scores to the human scale: isotonic, Platt-style, linear.

Every map is fitted on (raw judge score, human label) pairs and predicts on the human
scale, clipped to ``[low, high]``. Fitting needs numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Any: a map's parameters as JSON (any JSON type).
from typing import Any

import numpy as np

METHODS = ("identity", "isotonic", "platt", "linear")
# Scores or labels: a sequence of numbers or an array of them.
Scores = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class CalibrationMap:
    """A fitted map; ``params`` is plain JSON data, enough to rebuild it."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    low: float = 1.0
    high: float = 5.0

    def apply(self, raw: Scores) -> np.ndarray:
        """Map raw scores onto the human scale."""
        x = np.asarray(raw, dtype=float)
        if self.method == "identity":
            out = x
        elif self.method == "isotonic":
            # Linear interpolation between the fitted block points; flat beyond the ends.
            out = np.interp(x, self.params["x"], self.params["y"])
        elif self.method == "platt":
            z = self.params["a"] * x + self.params["b"]
            out = self.low + (self.high - self.low) / (1.0 + np.exp(-z))
        elif self.method == "linear":
            out = self.params["slope"] * x + self.params["intercept"]
        else:
            raise ValueError(f"unknown calibration method {self.method!r}")
        return np.clip(out, self.low, self.high)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CalibrationMap:
        return cls(data["method"], dict(data["params"]), data["low"], data["high"])


def pool_adjacent_violators(y: Scores, weights: Scores | None = None) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares (PAV).

    Adjacent blocks that violate the order are merged into their weighted mean until
    none does; each input position gets its block's mean.
    """
    values = np.asarray(y, dtype=float)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    means: list[float] = []
    block_w: list[float] = []
    counts: list[int] = []
    for v, wi in zip(values, w, strict=True):
        means.append(float(v))
        block_w.append(float(wi))
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = block_w[-2] + block_w[-1]
            merged = (means[-2] * block_w[-2] + means[-1] * block_w[-1]) / total
            means[-2:] = [merged]
            block_w[-2:] = [total]
            counts[-2:] = [counts[-2] + counts[-1]]
    return np.repeat(means, counts)


def fit_isotonic(raw: Scores, human: Scores, low: float = 1, high: float = 5) -> CalibrationMap:
    """Isotonic regression of human labels on raw scores (ties in ``raw`` pooled first)."""
    x = np.asarray(raw, dtype=float)
    y = np.asarray(human, dtype=float)
    xs = np.unique(x)
    means = np.array([y[x == v].mean() for v in xs])
    counts = np.array([np.sum(x == v) for v in xs], dtype=float)
    fitted = pool_adjacent_violators(means, counts)
    return CalibrationMap("isotonic", {"x": xs.tolist(), "y": fitted.tolist()}, low, high)


def fit_platt(
    raw: Scores,
    human: Scores,
    low: float = 1,
    high: float = 5,
    ridge: float = 1e-3,
    iterations: int = 100,
) -> CalibrationMap:
    """Platt-style sigmoid: ``low + (high - low) * sigmoid(a * raw + b)``.

    As in Platt scaling, the sigmoid is fitted by maximum likelihood (Newton's method),
    here against fractional targets ``(label - low) / (high - low)``; a small ridge keeps
    it finite when the labels separate perfectly.
    """
    x = np.asarray(raw, dtype=float)
    t = np.clip((np.asarray(human, dtype=float) - low) / (high - low), 0.0, 1.0)
    design = np.column_stack([x, np.ones_like(x)])
    theta = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (p - t) + ridge * theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return CalibrationMap("platt", {"a": float(theta[0]), "b": float(theta[1])}, low, high)


def fit_linear(raw: Scores, human: Scores, low: float = 1, high: float = 5) -> CalibrationMap:
    """Least-squares line (predictions clipped to the scale); flat when ``raw`` is constant."""
    x = np.asarray(raw, dtype=float)
    y = np.asarray(human, dtype=float)
    if np.all(x == x[0]):
        return CalibrationMap("linear", {"slope": 0.0, "intercept": float(y.mean())}, low, high)
    slope, intercept = np.polyfit(x, y, 1)
    return CalibrationMap(
        "linear", {"slope": float(slope), "intercept": float(intercept)}, low, high
    )


def fit_map(
    method: str, raw: Scores, human: Scores, low: float = 1, high: float = 5
) -> CalibrationMap:
    """Fit calibration ``method`` (one of :data:`METHODS`)."""
    if method == "identity":
        return CalibrationMap("identity", {}, low, high)
    if method == "isotonic":
        return fit_isotonic(raw, human, low, high)
    if method == "platt":
        return fit_platt(raw, human, low, high)
    if method == "linear":
        return fit_linear(raw, human, low, high)
    raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
