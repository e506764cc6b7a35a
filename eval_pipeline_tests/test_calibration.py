"""Calibration maps recover a planted distortion and improve agreement; too few labels refuse."""

from __future__ import annotations

import numpy as np
import pytest

from eval_pipeline.judge import (
    CalibrationError,
    fit_calibration,
    fit_isotonic,
    fit_linear,
    fit_platt,
    pool_adjacent_violators,
)

# A known monotone distortion of the 1-5 scale: a judge that is harsh below the top.
DISTORT = {1: 1.0, 2: 1.2, 3: 1.6, 4: 2.4, 5: 4.5}


def _synthetic(n: int = 300, noise: float = 0.15, seed: int = 3):
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, n).astype(float)
    raw = np.array([DISTORT[int(h)] for h in human]) + rng.normal(0, noise, n)
    return raw, human


def test_pool_adjacent_violators_matches_a_hand_computed_fit():
    assert pool_adjacent_violators([1, 3, 2, 4]).tolist() == [1, 2.5, 2.5, 4]
    assert pool_adjacent_violators([3, 2, 1]).tolist() == [2, 2, 2]
    assert pool_adjacent_violators([1, 2, 3]).tolist() == [1, 2, 3]
    # Weights: the heavier block pulls the pooled mean towards itself.
    assert pool_adjacent_violators([4, 1], weights=[3, 1]).tolist() == [3.25, 3.25]


def test_calibration_recovers_a_planted_monotone_distortion_and_improves_agreement():
    raw, human = _synthetic()
    result = fit_calibration(raw, human)
    assert result.method in {"isotonic", "platt"}
    # The chosen map inverts the distortion: each distorted level maps back near its label.
    for label, distorted in DISTORT.items():
        assert result.apply([distorted])[0] == pytest.approx(label, abs=0.35)
    assert result.after.mae < 0.5 * result.before.mae
    assert result.after.kappa > result.before.kappa
    assert result.after.kappa > 0.9
    # The distortion is monotone, so ranks were already right: Spearman stays high.
    assert result.before.spearman > 0.9 and result.after.spearman > 0.9
    assert result.cv_mae[result.method] == min(result.cv_mae.values())
    assert result.version.startswith(f"{result.method}@")


def test_calibration_is_reproducible():
    raw, human = _synthetic()
    assert fit_calibration(raw, human).to_json() == fit_calibration(raw, human).to_json()


def test_an_already_calibrated_judge_keeps_its_scores():
    rng = np.random.default_rng(0)
    human = rng.integers(1, 6, 100).astype(float)
    result = fit_calibration(human, human)
    assert result.cv_mae["identity"] == 0.0
    assert result.method == "identity"


def test_each_map_fits_what_it_should():
    x = np.array([1.0, 2, 3, 4, 5])
    line = fit_linear(x, 2 * x - 1)
    assert line.params == pytest.approx({"slope": 2.0, "intercept": -1.0})
    assert fit_linear(x, 2 * x - 1).apply([10])[0] == 5.0  # clipped to the scale
    iso = fit_isotonic([1, 1, 2, 3], [1, 3, 2, 5])
    assert iso.params["x"] == [1.0, 2.0, 3.0]
    assert iso.params["y"] == pytest.approx([2.0, 2.0, 5.0])
    # Platt: targets generated from a known sigmoid are fitted back.
    t = 1 / (1 + np.exp(-(1.5 * x - 4.5)))
    platt = fit_platt(x, 1 + 4 * t, ridge=0.0)
    assert platt.params["a"] == pytest.approx(1.5, abs=1e-3)
    assert platt.params["b"] == pytest.approx(-4.5, abs=1e-3)


def test_too_few_labels_refuse_with_a_clear_message():
    with pytest.raises(CalibrationError) as info:
        fit_calibration([3.0] * 12, [4.0] * 12, label="judge j on rubric coherence")
    message = str(info.value)
    assert "judge j on rubric coherence: only 12 labelled responses" in message
    assert "at least 20" in message


def _document(n: int, seed: int) -> tuple[dict, list[float]]:
    from eval_pipeline.judge import fit_calibration

    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 6, n)
    raw = np.clip(labels - 1 + rng.normal(0, 0.7, n), 1, 5)
    result = fit_calibration(raw.tolist(), labels.astype(float).tolist(), methods=("linear",))
    verdicts = [{"score": float(r), "label": int(lab)} for r, lab in zip(raw, labels, strict=True)]
    samples = np.clip(rng.integers(1, 6, 200) - 1 + rng.normal(0, 0.7, 200), 1, 5).tolist()
    return {"status": "fitted", "result": result.to_json(), "verdicts": verdicts}, samples


def test_a_calibrated_interval_is_wider_when_the_calibration_had_fewer_labels():
    from eval_pipeline.judge import calibrated_mean_interval

    few, samples = _document(20, 1)
    many, _ = _document(2000, 1)
    low_few, high_few = calibrated_mean_interval(samples, few, resamples=300)
    low_many, high_many = calibrated_mean_interval(samples, many, resamples=300)
    assert high_few - low_few > 1.5 * (high_many - low_many)
    assert calibrated_mean_interval(samples, {"status": "refused"}) is None


def test_krippendorffs_alpha_matches_a_hand_computed_value_and_perfect_agreement():
    from eval_pipeline.judge import krippendorff_alpha

    # Pooled ratings 1, 2, 2, 3: observed disagreement 1, expected 16 / 12.
    assert krippendorff_alpha([[1, 2], [2, 3]]) == pytest.approx(0.25)
    assert krippendorff_alpha([[1, 1, 1], [4, 4, None], [2, 2, 2]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[3, None], [4, None]]) is None  # no unit rated twice


def test_judge_human_agreement_comes_with_an_interval_that_holds_the_value():
    from eval_pipeline.judge import judge_human_agreement

    rng = np.random.default_rng(3)
    labels = rng.integers(1, 6, 80).astype(float)
    scores = np.clip(labels + rng.normal(0, 0.8, 80), 1, 5)
    figures = judge_human_agreement(scores.tolist(), labels.tolist())
    for name in ("kappa", "spearman"):
        figure = figures[name]
        assert figure["ci_low"] <= figure["value"] <= figure["ci_high"]
        assert figure["ci_high"] - figure["ci_low"] < 0.5
