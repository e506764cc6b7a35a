"""Statistics against hand-computed values: agreement, paired tests, pass@k, slices."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from eval_pipeline.core.keys import problem_id
from eval_pipeline.scoring import stats
from eval_pipeline.stages.aggregate import slice_aggregates


def test_rankdata_averages_ties():
    assert stats.rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]


def test_spearman_matches_the_textbook_formula():
    # No ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); ranks of b are 1,2,4,3,5 -> sum d^2 = 2.
    assert stats.spearman([1, 2, 3, 4, 5], [10, 20, 40, 30, 50]) == pytest.approx(
        1 - 6 * 2 / (5 * 24)
    )
    assert stats.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.spearman([1, 1, 1], [1, 2, 3]) is None


def test_quadratic_weighted_kappa_matches_a_hand_computation():
    # Two raters on 1..3 (4 items): a = 1,2,3,3; b = 1,2,2,3.
    # Weights w_ij = (i-j)^2/4. Observed: one (3,2) pair -> sum w O = 0.25 * 1/4 = 1/16.
    # Marginals a: (1/4, 1/4, 1/2), b: (1/4, 1/2, 1/4);
    # expected sum w E = sum_ij w_ij a_i b_j = 0.25*(1/4*1/2 + 1/4*1/4 + 1/4*1/4 + 1/2*1/2)
    #                   + 1*(1/4*1/4 + 1/2*1/4) = 0.25*0.5 + 0.1875 = 0.3125.
    kappa = stats.quadratic_weighted_kappa([1, 2, 3, 3], [1, 2, 2, 3], low=1, high=3)
    assert kappa == pytest.approx(1 - (1 / 16) / 0.3125)
    assert stats.quadratic_weighted_kappa([1, 2, 3], [1, 2, 3], 1, 3) == pytest.approx(1.0)
    assert stats.quadratic_weighted_kappa([2, 2], [2, 2], 1, 3) is None


def test_mean_absolute_error():
    assert stats.mean_absolute_error([1, 2, 5], [2, 2, 3]) == pytest.approx(1.0)


def test_mcnemar_exact_and_mid_p_match_the_binomial_by_hand():
    # b = 5 pass->fail, c = 0: exact p = 2 * 0.5^5 = 0.0625; mid-p = 2 * (0.5^5 / 2) = 0.03125.
    base, cur = [1] * 5 + [1] * 10, [0] * 5 + [1] * 10
    assert stats.mcnemar(base, cur, mid_p=False) == (5, 0, pytest.approx(0.0625))
    assert stats.mcnemar(base, cur) == (5, 0, pytest.approx(0.03125))
    # b = 3, c = 1: P(X <= 1) = 5/16 for Binomial(4, 1/2); exact 10/16, mid-p 2 * (5/16 - 2/16).
    base, cur = [1, 1, 1, 0, 1], [0, 0, 0, 1, 1]
    assert stats.mcnemar(base, cur, mid_p=False)[2] == pytest.approx(10 / 16)
    assert stats.mcnemar(base, cur)[2] == pytest.approx(6 / 16)
    assert stats.mcnemar([1, 0], [1, 0]) == (0, 0, 1.0)


def test_paired_bootstrap_is_seeded_and_sees_no_change_in_identical_runs():
    same = [0.2, 0.5, 0.9, 0.4]
    assert stats.paired_bootstrap(same, same) == (0.0, 0.0, 0.0, 1.0)
    base = [3, 4, 5, 2, 4, 3, 5, 4, 3, 4] * 3
    cur = [b - 1 if i % 3 == 0 else b for i, b in enumerate(base)]
    first = stats.paired_bootstrap(base, cur, seed=1)
    assert first == stats.paired_bootstrap(base, cur, seed=1)
    delta, low, high, p = first
    assert delta == pytest.approx(-10 / 30)
    assert low < delta < high < 0
    assert p < 0.01
    # All differences equal: the sign test, 2 * 0.5^n.
    assert stats.paired_bootstrap([1, 1, 1], [0, 0, 0])[3] == pytest.approx(0.25)


def test_pass_at_k_over_problems_averages_the_unbiased_estimator():
    ids = ["p1#0", "p1#1", "p1#2", "p2#0", "p2#1", "p2#2"]
    passed = [1, 0, 1, 0, 0, 0]
    # p1: n=3, c=2 -> pass@1 = 2/3, pass@2 = 1 - C(1,2)/C(3,2) = 1; p2: 0 and 0.
    assert stats.pass_at_k_over_problems(ids, passed, 1) == pytest.approx((2 / 3 + 0) / 2)
    assert stats.pass_at_k_over_problems(ids, passed, 2) == pytest.approx((1 + 0) / 2)
    assert stats.pass_at_k(3, 1, 2) == pytest.approx(1 - math.comb(2, 2) / math.comb(3, 2))
    with pytest.raises(ValueError):
        stats.pass_at_k_over_problems(ids, passed, 4)
    assert problem_id("HumanEval/3#2") == "HumanEval/3"


def test_slice_aggregates_group_by_every_tag_of_a_sample():
    scores = pl.DataFrame(
        {"sample_id": ["a", "b", "c", "d"], "metric": ["m"] * 4, "value": [1.0, 0.0, 1.0, None]}
    )
    samples = pl.DataFrame(
        {"sample_id": ["a", "b", "c", "d"], "tags": [["x", "easy"], ["x"], ["y", "easy"], ["y"]]}
    )
    out = slice_aggregates(scores, samples, "mod", "ds", "p@1")
    got = {r["slice"]: (r["n"], r["mean"]) for r in out.iter_rows(named=True)}
    assert got == {"easy": (2, 1.0), "x": (2, 0.5), "y": (1, 1.0)}
    x = out.filter(pl.col("slice") == "x").row(0, named=True)
    assert x["stderr"] == pytest.approx(0.5)  # sd([1, 0]) = 0.7071 / sqrt(2)


def test_five_paired_samples_cannot_show_a_ten_point_drop():
    assert stats.minimum_detectable_drop(5, 0.05) is None
    assert stats.mcnemar_power(5, 0.10, 0.05) < 0.05


def test_the_gate_power_matches_a_simulation_of_the_paired_test():
    rng = np.random.default_rng(7)
    n, churn, drop, trials = 60, 0.05, 0.2, 2000
    hits = 0
    for _ in range(trials):
        u = rng.random(n)
        worse = u < churn + drop
        better = (u >= churn + drop) & (u < 2 * churn + drop)
        base, cur = np.ones(n), np.ones(n)
        cur[worse], base[better] = 0.0, 0.0
        b, c, p = stats.mcnemar(base, cur)
        hits += p < 0.05 and b > c
    assert stats.mcnemar_power(n, drop, churn) == pytest.approx(hits / trials, abs=0.03)


def test_the_planned_sample_count_sees_the_drop_it_was_planned_for():
    n = stats.required_samples(0.10, 0.05)
    assert n is not None and 100 < n < 300
    assert stats.mcnemar_power(n, 0.10, 0.05) >= 0.8
    assert stats.minimum_detectable_drop(n, 0.05) <= 0.10
    # More churn between runs needs more samples for the same drop.
    assert stats.required_samples(0.10, 0.10) > n
