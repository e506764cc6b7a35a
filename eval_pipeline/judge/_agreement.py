"""Agreement figures with intervals: judge with people, judges with each other.

- :func:`agreement_interval`: a seeded bootstrap percentile interval of any agreement
  statistic over paired ratings (units resampled with both their ratings).
- :func:`krippendorff_alpha`: Krippendorff's alpha for interval data, any number of raters,
  missing ratings allowed (a unit counts when at least two raters rated it).
- :func:`cohen_kappa` and :func:`agreement_rate`: categorical agreement of two raters
  (a pairwise judge's verdicts with people's preferences).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SEED = 20241207


def agreement_interval(
    statistic: Callable[[Sequence[float], Sequence[float]], float | None],
    x: Sequence[float],
    y: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """The bootstrap interval of ``statistic(x, y)``; None with fewer than 3 pairs."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, a.size, a.size)
        value = statistic(a[pick].tolist(), b[pick].tolist())
        if value is not None and np.isfinite(value):
            values.append(value)
    if not values:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def krippendorff_alpha(units: Sequence[Sequence[float | None]]) -> float | None:
    """Krippendorff's alpha (interval metric) over ``units``, each one rating per rater.

    ``1 - D_o / D_e``: the observed disagreement within units over the disagreement
    expected from all pairable ratings. None when fewer than two units have two ratings
    or every rating is the same.
    """
    rated = [[float(v) for v in unit if v is not None] for unit in units]
    rated = [u for u in rated if len(u) >= 2]
    if len(rated) < 2:
        return None
    pooled = np.concatenate([np.asarray(u) for u in rated])
    n = pooled.size
    observed = 0.0
    for unit in rated:
        values = np.asarray(unit)
        diffs = (values[:, None] - values[None, :]) ** 2
        observed += diffs.sum() / (len(values) - 1)
    observed /= n
    expected = ((pooled[:, None] - pooled[None, :]) ** 2).sum() / (n * (n - 1))
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def cohen_kappa(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Cohen's kappa of two raters over the same units, categories as given (unweighted).

    ``(p_o - p_e) / (1 - p_e)``: the observed share of agreement against the share
    expected from each rater's own category frequencies. None for no units, or when both
    raters used one and the same category throughout (``p_e = 1``).
    """
    if len(x) != len(y) or not x:
        return None
    n = len(x)
    observed = sum(1 for a, b in zip(x, y, strict=True) if a == b) / n
    categories = set(x) | set(y)
    expected = sum((list(x).count(c) / n) * (list(y).count(c) / n) for c in categories)
    if expected >= 1.0:
        return None
    return float((observed - expected) / (1.0 - expected))


def agreement_rate(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The share of units on which the two raters agree; None for no units."""
    if len(x) != len(y) or not x:
        return None
    return float(sum(1 for a, b in zip(x, y, strict=True) if a == b) / len(x))
