"""Judge a tuned model against its base: the paired tests of the regression gate.

Both models answered the same test samples, so the comparison is per sample, exactly as
a regression against a baseline is judged (:func:`eval_pipeline.regression.compare_runs`:
McNemar's test for pass/fail metrics, a paired bootstrap otherwise), with the base as the
baseline: a positive delta whose CI excludes zero is an improvement.
"""

from __future__ import annotations

import polars as pl

from eval_pipeline.regression import DEFAULT_ALPHA, RegressionReport, compare_runs


def compare_adapter(
    base_scores: pl.DataFrame,
    adapter_scores: pl.DataFrame,
    *,
    metrics: list[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = 0.0,
    resamples: int = 10000,
    seed: int = 20240605,
) -> RegressionReport:
    """Compare two ``scores`` tables of one dataset: base model first, adapter second.

    Args:
        base_scores: The base model's per-sample scores (one ``model`` value).
        adapter_scores: The adapter model's scores on the same dataset.
        metrics: The metrics to compare (default: every metric both tables have).
        alpha: Significance level of the paired tests.
        threshold: The smallest change, in the metric's units, that counts either way.
        resamples: Bootstrap resamples.
        seed: Bootstrap seed (the result is reproducible).

    Returns:
        The regression gate's report with the base as the baseline
        (``baseline_name``) and the adapter as the current run (``current_name``, the
        ``model`` of every comparison): one comparison per dataset x metric, in the order
        the adapter's scores list them; ``baseline`` is the base's value, ``current`` the
        adapter's.
    """
    base_model = _single(base_scores, "base")
    adapter_model = _single(adapter_scores, "adapter")
    if metrics is not None:
        base_scores = base_scores.filter(pl.col("metric").is_in(metrics))
        adapter_scores = adapter_scores.filter(pl.col("metric").is_in(metrics))
    # The paired tests pair rows by model too: one label for both sides.
    same = pl.lit(adapter_model).alias("model")
    return compare_runs(
        base_scores.with_columns(same),
        adapter_scores.with_columns(same),
        alpha=alpha,
        threshold=threshold,
        baseline_name=base_model,
        current_name=adapter_model,
        resamples=resamples,
        seed=seed,
    )


def _single(scores: pl.DataFrame, side: str) -> str:
    models = scores["model"].unique().to_list()
    if len(models) != 1:
        raise ValueError(f"the {side} scores must hold one model, got {sorted(models)}")
    return models[0]
