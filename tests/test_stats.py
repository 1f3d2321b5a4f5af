"""The statistics module against known answers, known effects and simulated nulls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from distill_audit.traits import stats


def test_holm_matches_hand_computation():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([None, 0.2]) == [None, 0.2]
    assert stats.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])


def test_bh_matches_hand_computation():
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_diff_in_diff_is_change_minus_change():
    did = stats.diff_in_diff([0.1, 0.2], [0.4, 0.2], [0.1, 0.3], [0.2, 0.1])
    assert did == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError):
        stats.diff_in_diff([1, 2], [1], [1, 2], [1, 2])


def test_logit_is_finite_at_the_edges():
    assert np.all(np.isfinite(stats.logit([0.0, 0.5, 1.0])))
    assert stats.logit(0.5) == pytest.approx(0.0)


def test_exact_sign_flip_p_when_every_difference_is_positive():
    # 8 clusters, all positive: exact two-sided sign-flip p = 2 / 2^8.
    eff = stats.paired_effect(np.arange(1, 9, dtype=float), with_ci=False)
    assert eff.p_value == pytest.approx(2 / 256)


def test_permutation_p_agrees_with_t_test_on_normal_data():
    rng = np.random.default_rng(3)
    x = rng.normal(0.4, 1.0, 60)
    eff = stats.paired_effect(x, seed=1)
    assert eff.p_value == pytest.approx(sps.ttest_1samp(x, 0).pvalue, abs=0.02)
    assert eff.ci_low < x.mean() < eff.ci_high


def test_known_effect_is_found_and_covered():
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1.0, 80)
    eff = stats.paired_effect(x)
    assert eff.significant and eff.p_value < 0.01
    assert eff.ci_low < 0.5 < eff.ci_high


def test_clusters_are_averaged_before_testing():
    values = np.array([1.0, 1.2, -0.5, -0.7, 0.3, 0.1])
    eff = stats.paired_effect(values, clusters=["a", "a", "b", "b", "c", "c"], with_ci=False)
    assert eff.n_items == 6 and eff.n_clusters == 3
    assert eff.estimate == pytest.approx(np.mean([1.1, -0.6, 0.2]))


def test_mde_formula_and_power_calibration():
    assert stats.minimum_detectable_effect(1.0, 100) == pytest.approx(0.28016, abs=1e-4)
    assert stats.minimum_detectable_effect(1.0, 1) is None
    # A true effect equal to the MDE is detected about 80% of the time.
    rng = np.random.default_rng(11)
    n, sims = 40, 200
    mde = stats.minimum_detectable_effect(1.0, n)
    hits = sum(
        stats.paired_effect(rng.normal(mde, 1.0, n), seed=i, with_ci=False, n_permutations=500).significant
        for i in range(sims)
    )
    assert 0.70 <= hits / sims <= 0.90


def test_paired_false_positive_rate_on_nulls():
    rng = np.random.default_rng(5)
    sims = 300
    rejections = sum(
        stats.paired_effect(rng.normal(0, 1, 30), seed=i, with_ci=False, n_permutations=500).significant
        for i in range(sims)
    )
    assert 0.025 <= rejections / sims <= 0.08


def test_clustering_keeps_the_false_positive_rate_where_ignoring_it_would_not():
    rng = np.random.default_rng(6)
    sims, k, per = 200, 12, 8
    clusters = np.repeat(np.arange(k), per)
    with_clusters = without = 0
    for i in range(sims):
        x = np.repeat(rng.normal(0, 1, k), per) + rng.normal(0, 0.2, k * per)  # strongly correlated within cluster
        with_clusters += stats.paired_effect(x, clusters, seed=i, with_ci=False, n_permutations=500).significant
        without += stats.paired_effect(x, seed=i, with_ci=False, n_permutations=500).significant
    assert 0.02 <= with_clusters / sims <= 0.09
    assert without / sims > 0.2  # the check above can fail: treating items as independent inflates errors


def test_two_sample_false_positive_rate_and_known_effect():
    rng = np.random.default_rng(7)
    sims = 300
    rej = sum(
        stats.two_sample_effect(
            rng.normal(0, 1, 40), rng.normal(0, 1, 50), seed=i, with_ci=False, n_permutations=500
        ).significant
        for i in range(sims)
    )
    assert 0.02 <= rej / sims <= 0.085
    eff = stats.two_sample_effect(rng.normal(0.8, 1, 60), rng.normal(0, 1, 60))
    assert eff.significant and eff.ci_low < 0.8 < eff.ci_high


def test_bootstrap_ci_coverage_on_nulls():
    rng = np.random.default_rng(8)
    sims = 120
    covered = 0
    for i in range(sims):
        eff = stats.paired_effect(rng.normal(0.2, 1, 40), seed=i, n_permutations=200)
        covered += eff.ci_low <= 0.2 <= eff.ci_high
    assert 0.89 <= covered / sims <= 0.99


def test_holm_controls_familywise_error_over_a_null_battery():
    rng = np.random.default_rng(9)
    sims, traits = 100, 10
    any_hit = 0
    for s in range(sims):
        family = [
            stats.paired_effect(rng.normal(0, 1, 25), seed=s * 100 + t, with_ci=False, n_permutations=400)
            for t in range(traits)
        ]
        any_hit += any(e.significant for e in stats.correct(family, "holm"))
    assert any_hit / sims <= 0.09


def test_probability_did_reports_both_scales():
    rng = np.random.default_rng(10)
    base = rng.uniform(0.01, 0.05, 30)
    out = stats.probability_did(base, base + 0.05, base, base + 0.01, clusters=list(range(30)))
    assert out["prob_points"].estimate == pytest.approx(0.04)
    assert out["log_odds"].estimate > 0 and out["prob_points"].significant


def test_degenerate_inputs_say_underpowered_and_serialize():
    eff = stats.paired_effect([0.3])
    assert eff.status == "underpowered" and eff.p_value is None
    d = stats.two_sample_effect([1.0], [2.0]).to_dict()
    assert d["status"] == "underpowered"
    import json

    json.dumps(stats.paired_effect([0.0, 0.0, 0.0]).to_dict(), allow_nan=False)


def test_seed_summary():
    s = stats.seed_summary({0: 0.1, 1: 0.3, 2: None})
    assert s["n_seeds"] == 2 and s["mean"] == pytest.approx(0.2) and s["same_sign"] is True
    assert math.isclose(s["sd"], np.std([0.1, 0.3], ddof=1))
    assert stats.seed_summary([])["n_seeds"] == 0


def test_location_tests_match_scipy_welch_and_one_sample_t():
    rng = np.random.default_rng(12)
    x, y = rng.normal(0.3, 1.0, (40, 3)), rng.normal(0.0, 2.0, (55, 3))
    lt = stats.location_tests(x, y)
    ref = sps.ttest_ind(x, y, equal_var=False, alternative="greater")
    assert lt.p_value("greater") == pytest.approx(ref.pvalue, rel=1e-9)
    assert lt.p_value("two-sided") == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
    lo, hi = lt.ci(0.05)
    ci = sps.ttest_ind(x[:, 0], y[:, 0], equal_var=False).confidence_interval(0.95)
    assert (lo[0], hi[0]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    paired = stats.location_tests(x[:30], y[:30], paired=True)
    assert paired.p_value("less") == pytest.approx(sps.ttest_rel(x[:30], y[:30], alternative="less").pvalue, rel=1e-9)
    assert np.all(paired.df == 29)


def test_analytic_p_has_no_floor_and_one_sided_halves_the_two_sided_p():
    rng = np.random.default_rng(13)
    x = rng.normal(1.0, 1.0, 200)
    t = stats.paired_effect(x, test="t", alternative="greater")
    assert t.p_value < 1e-20 and t.extra["test"] == "t"  # a permutation p cannot go below 1/B
    x = rng.normal(0.15, 1.0, 60)
    two = stats.paired_effect(x, test="t", with_ci=False)
    one = stats.paired_effect(x, test="t", alternative="greater", with_ci=False)
    assert one.p_value == pytest.approx(two.p_value / 2) and one.ci_low == pytest.approx(two.ci_low)
    w = stats.two_sample_effect(x, rng.normal(0, 1, 70), test="welch", alternative="greater")
    assert 0 < w.p_value < 1 and w.extra["df"] > 100
    # Permutation with a direction: the canary's default stays two-sided.
    assert stats.paired_effect(
        np.arange(1, 9, dtype=float), alternative="greater", with_ci=False
    ).p_value == pytest.approx(1 / 256)


def test_corrected_one_sided_mde():
    # Holm over m tests: a single real effect must clear alpha/m first; one-sided: z_{1-alpha/m}.
    z = sps.norm.isf(0.05 / 21) + sps.norm.ppf(0.8)
    assert stats.minimum_detectable_effect(1.0, 100, alternative="greater", m=21) == pytest.approx(z / 10)
    assert stats.mde_multiplier(alternative="greater", m=94, df=46) == pytest.approx(
        sps.t.isf(0.05 / 94, 46) + sps.t.ppf(0.8, 46)
    )
    assert (
        stats.mde_multiplier(alternative="greater")
        < stats.mde_multiplier()
        < stats.mde_multiplier(alternative="greater", m=4)
    )
    # Coverage: an effect of the corrected MDE clears alpha/m about 80% of the time.
    rng = np.random.default_rng(14)
    n, m, sims = 50, 21, 2000
    mde = stats.minimum_detectable_effect(1.0, n, alternative="greater", m=m, df=n - 1)
    lt = stats.location_tests(rng.normal(mde, 1.0, (n, sims)))
    assert 0.74 <= np.mean(lt.p_value("greater") < 0.05 / m) <= 0.86
