"""Statistics for aggregates: mean, standard error, seeded bootstrap CI, unbiased pass@k."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from eval_pipeline.core.keys import problem_id


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean (sample standard deviation, ddof=1, over sqrt(n))."""
    n = len(values)
    if n < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(n))


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | tuple[None, None]:
    """Percentile bootstrap confidence interval of the mean, reproducible through ``seed``."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None, None
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(resamples, data.size))
    means = data[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k).

    ``n`` samples per problem, ``c`` of them correct.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


# --------------------------------------------------------------------------- pass@k over problems


def pass_at_k_over_problems(
    sample_ids: Sequence[str],
    passed: Sequence[float],
    k: int,
) -> float | None:
    """Mean unbiased pass@k over problems, from one pass/fail value per sample.

    Samples are grouped into problems with :func:`eval_pipeline.core.keys.problem_id`;
    each problem contributes ``pass_at_k(n, c, k)`` with its own ``n`` (samples) and ``c``
    (passes).

    Raises:
        ValueError: A problem has fewer than ``k`` samples.
    """
    per_problem: dict[str, list[float]] = {}
    for sid, value in zip(sample_ids, passed, strict=True):
        per_problem.setdefault(problem_id(sid), []).append(float(value))
    if not per_problem:
        return None
    estimates = [pass_at_k(len(v), int(round(sum(v))), k) for v in per_problem.values()]
    return float(np.mean(estimates))


# --------------------------------------------------------------------------- agreement


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks starting at 1, ties sharing their average rank (as ``scipy.stats.rankdata``)."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="mergesort")
    ranks = np.empty(data.size, dtype=float)
    sorted_data = data[order]
    i = 0
    while i < data.size:
        j = i
        while j + 1 < data.size and sorted_data[j + 1] == sorted_data[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson correlation of average ranks).

    None when fewer than two pairs or when either side is constant (undefined).
    """
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    ra, rb = rankdata(a), rankdata(b)
    if np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def quadratic_weighted_kappa(
    a: Sequence[float], b: Sequence[float], low: int = 1, high: int = 5
) -> float | None:
    """Cohen's kappa with quadratic weights between two ratings on the scale ``low..high``.

    Ratings are rounded to the nearest category and clipped to the scale, so continuous
    (calibrated) scores can be compared with integer labels. None when the expected
    disagreement is zero (both raters constant on the same category).
    """
    if len(a) != len(b):
        raise ValueError(f"kappa needs equal lengths, got {len(a)} and {len(b)}")
    if not len(a):
        return None
    cats = high - low + 1
    ia = np.clip(np.rint(np.asarray(a, dtype=float)), low, high).astype(int) - low
    ib = np.clip(np.rint(np.asarray(b, dtype=float)), low, high).astype(int) - low
    observed = np.zeros((cats, cats))
    np.add.at(observed, (ia, ib), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    idx = np.arange(cats)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (cats - 1) ** 2
    denominator = float((weights * expected).sum())
    if denominator == 0.0:
        return None
    return float(1.0 - (weights * observed).sum() / denominator)


def mean_absolute_error(predicted: Sequence[float], truth: Sequence[float]) -> float | None:
    """Mean of ``|predicted - truth|``; None for empty input."""
    if len(predicted) != len(truth):
        raise ValueError(f"MAE needs equal lengths, got {len(predicted)} and {len(truth)}")
    if not len(predicted):
        return None
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(truth, float))))


# --------------------------------------------------------------------------- paired tests


def mcnemar(
    baseline: Sequence[float], current: Sequence[float], *, mid_p: bool = True
) -> tuple[int, int, float]:
    """McNemar's test for paired pass/fail outcomes (exact binomial, optionally mid-p).

    Only discordant pairs matter: ``b`` samples passed in the baseline and failed now,
    ``c`` failed then and pass now. Under the null each discordant pair is a fair coin,
    so the two-sided exact p-value is ``min(1, 2 * P(X <= min(b, c)))`` with
    ``X ~ Binomial(b + c, 1/2)``. The mid-p version subtracts half the probability of
    the observed value, which keeps the test closer to its nominal level (the exact
    test is conservative for few discordant pairs).

    Returns:
        ``(b, c, p_value)``; the p-value is 1.0 when there are no discordant pairs.
    """
    if len(baseline) != len(current):
        raise ValueError(f"mcnemar needs paired values, got {len(baseline)} and {len(current)}")
    base = np.asarray(baseline, dtype=float) >= 0.5
    cur = np.asarray(current, dtype=float) >= 0.5
    b = int(np.sum(base & ~cur))
    c = int(np.sum(~base & cur))
    n = b + c
    if n == 0:
        return b, c, 1.0
    k = min(b, c)
    pmf = [math.comb(n, i) / 2.0**n for i in range(k + 1)]
    tail = sum(pmf)
    if mid_p:
        tail -= pmf[k] / 2.0
    return b, c, float(min(1.0, 2.0 * tail))


def paired_bootstrap(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """Paired bootstrap of the mean difference ``current - baseline``.

    Samples are resampled as pairs, so whatever a sample's difficulty contributes to both
    runs cancels out. The CI is the percentile interval of the resampled mean difference.
    The two-sided p-value comes from the resampled differences shifted to mean zero
    (the null of no change): the share of resampled means at least as far from zero as
    the observed one, with the usual +1 correction so it is never exactly zero.

    Returns:
        ``(delta, ci_low, ci_high, p_value)``.
    """
    if len(baseline) != len(current):
        raise ValueError(
            f"paired bootstrap needs paired values, got {len(baseline)} and {len(current)}"
        )
    diffs = np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)
    if diffs.size == 0:
        raise ValueError("paired bootstrap needs at least one pair")
    delta = float(diffs.mean())
    if np.allclose(diffs, diffs[0]):
        # No variation: every resample equals the observed mean, so the bootstrap says
        # nothing; fall back to the sign test (all n differences share one sign).
        p_sign = 1.0 if delta == 0.0 else min(1.0, 2.0 * 0.5**diffs.size)
        return delta, delta, delta, p_sign
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diffs.size, size=(resamples, diffs.size))
    means = diffs[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    null_means = means - delta
    extreme = int(np.sum(np.abs(null_means) >= abs(delta) - 1e-12))
    p_value = (extreme + 1) / (resamples + 1)
    return delta, float(low), float(high), float(min(1.0, p_value))


# --------------------------------------------------------------------------- power of the paired gate


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    """``P(X = k)`` for ``k = 0..n``, ``X ~ Binomial(n, p)`` (log space: large ``n`` is fine)."""
    k = np.arange(n + 1)
    if p <= 0.0 or p >= 1.0:
        out = np.zeros(n + 1)
        out[0 if p <= 0.0 else n] = 1.0
        return out
    log_comb = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) for i in k])
        - np.array([math.lgamma(n - i + 1) for i in k])
    )
    return np.exp(log_comb + k * math.log(p) + (n - k) * math.log1p(-p))


def _mcnemar_rejects(d: int, alpha: float) -> np.ndarray:
    """For ``d`` discordant pairs: whether ``w`` worsened of them is significant, ``w = 0..d``.

    The same two-sided mid-p exact test as :func:`mcnemar`.
    """
    pmf = _binomial_pmf(d, 0.5)
    cdf = np.cumsum(pmf)
    w = np.arange(d + 1)
    low = np.minimum(w, d - w)
    p = np.minimum(1.0, 2.0 * (cdf[low] - pmf[low] / 2.0))
    return p < alpha


def mcnemar_power(n: int, drop: float, churn: float, *, alpha: float = 0.05) -> float:
    """The chance that the paired gate flags a true drop of ``drop`` on ``n`` samples.

    Each sample flips from pass to fail with probability ``churn + drop`` and from fail to
    pass with ``churn`` (``churn`` is the flipping that happens without any real change:
    sampling noise, nondeterministic kernels). The gate is :func:`mcnemar` (mid-p) at
    ``alpha``, counting only drops (more samples worse than better).
    """
    if n <= 0 or drop <= 0:
        return 0.0
    discordant = min(1.0, drop + 2.0 * churn)
    worse_share = (discordant + drop) / (2.0 * discordant)
    by_count = _binomial_pmf(n, discordant)
    power = 0.0
    for d in range(1, n + 1):
        if by_count[d] < 1e-12:
            continue
        rejects = _mcnemar_rejects(d, alpha)
        w = np.arange(d + 1)
        # Only a drop counts: significant and more worsened than improved.
        hit = rejects & (w > d - w)
        power += by_count[d] * float(_binomial_pmf(d, worse_share)[hit].sum())
    return float(power)


def minimum_detectable_drop(
    n: int, churn: float, *, alpha: float = 0.05, power: float = 0.8, step: float = 0.005
) -> float | None:
    """The smallest drop (a share, 0..1) the paired gate finds with ``power`` on ``n`` samples.

    None when even a drop to zero would usually go unseen (too few samples).
    """
    steps = int(round(1.0 / step))
    low, high = 1, steps
    if mcnemar_power(n, 1.0 - 2.0 * churn if churn < 0.5 else 1.0, churn, alpha=alpha) < power:
        return None
    while low < high:  # power grows with the drop: bisect over the grid
        mid = (low + high) // 2
        if mcnemar_power(n, mid * step, churn, alpha=alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return round(low * step, 6)


def required_samples(
    drop: float,
    churn: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_n: int = 5000,
) -> int | None:
    """The fewest samples on which the paired gate finds a ``drop`` with ``power``.

    None when not even ``max_n`` samples are enough.
    """
    if mcnemar_power(max_n, drop, churn, alpha=alpha) < power:
        return None
    low, high = 1, max_n
    while low < high:
        mid = (low + high) // 2
        if mcnemar_power(mid, drop, churn, alpha=alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return low
