"""The report's intervals, tests and power against scipy and hand-worked cases: Student t with and without the users'
term, the hierarchical bootstrap's draws, BCa, Holm's adjustment, the sign-flip and trend permutation tests, the
power of a comparison and the seeds it needs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.report import significance, stats

# Student t

def test_t_over_seeds_is_scipys_t_interval_of_the_seed_means():
    rng = np.random.default_rng(1)
    strata = [rng.normal(0.5 + 0.03 * s, 0.1, (16, 1)) for s in range(4)]  # nested: each seed its own users
    ci = stats.estimate(strata, stats.mean_of, "t", 0.9, null=0.0)
    means = [x.mean() for x in strata]
    low, high = scipy_stats.t.interval(0.9, 3, loc=np.mean(means), scale=scipy_stats.sem(means))
    assert (ci.mean, ci.low, ci.high) == pytest.approx((np.mean(means), low, high))
    assert ci.p == pytest.approx(scipy_stats.ttest_1samp(means, 0.0).pvalue)


def test_with_the_same_users_on_every_seed_t_adds_the_users_variance_as_two_way_anova_gives_it():
    """For a mean, the seeds' term is MS(seeds) / (S U) and the users' jackknife term MS(users) / (S U), with the
    mean squares of the two-way table without replication, and Satterthwaite's degrees of freedom."""
    rng = np.random.default_rng(2)
    seeds, users = 3, 6
    y = 0.5 + rng.normal(0, 0.02, (seeds, 1)) + rng.normal(0, 0.1, (1, users)) + rng.normal(0, 0.03, (seeds, users))
    ms_seeds = users * np.var(y.mean(axis=1), ddof=1)
    ms_users = seeds * np.var(y.mean(axis=0), ddof=1)
    a, b = ms_seeds / (seeds * users), ms_users / (seeds * users)
    found = stats.spread(stats.Strata(y[..., None], crossed=True), stats.mean_of)
    assert found.seed_var / seeds == pytest.approx(a) and found.user_var == pytest.approx(b)
    df = (a + b) ** 2 / (a ** 2 / (seeds - 1) + b ** 2 / (users - 1))
    assert found.df() == pytest.approx(df)
    ci = stats.estimate(stats.Strata(y[..., None], crossed=True), stats.mean_of, "t")
    assert ci.high - ci.mean == pytest.approx(scipy_stats.t.ppf(0.975, df) * math.sqrt(a + b))
    nested = stats.estimate(stats.Strata(y[..., None]), stats.mean_of, "t")
    assert ci.high - ci.low > nested.high - nested.low  # the users' term widens it


def test_crossed_strata_need_every_seed_to_hold_the_same_number_of_users():
    assert stats.Strata.of([np.zeros((3, 1)), np.zeros((3, 1))], crossed=True).crossed
    assert not stats.Strata.of([np.zeros((3, 1)), np.zeros((2, 1))], crossed=True).crossed


# the hierarchical bootstrap

def test_a_crossed_resample_draws_one_set_of_users_for_every_seed():
    """Two seeds with the same two users scoring 0 and 1. One draw of users for both seeds: each resample's
    mean is that of two drawn users (0, 1/2 or 1); a draw per seed averages four (also 1/4 and 3/4)."""
    same = [np.array([[0.0], [1.0]])] * 2
    crossed = stats.resampled(stats.Strata.of(same, crossed=True), stats.mean_of, 2000)
    nested = stats.resampled(stats.Strata.of(same), stats.mean_of, 2000)
    assert set(np.unique(crossed)) == {0.0, 0.5, 1.0}
    assert {0.25, 0.75} <= set(np.unique(nested))


def test_the_percentile_bootstrap_is_deterministic_and_needs_its_seeds():
    values = list(np.random.default_rng(5).normal(0.68, 0.04, stats.least_seeds("bootstrap", crossed=False)))
    first, second = stats.interval(values, "bootstrap"), stats.interval(values, "bootstrap")
    assert first == second and min(values) <= first.low < first.mean < first.high <= max(values)
    assert not stats.interval(values[:-1], "bootstrap").has_ci


# BCa

def test_bca_is_scipys_bca_of_the_seeds_estimates_and_its_p_value_is_where_it_reaches_the_null():
    rng = np.random.default_rng(3)
    strata = [rng.normal(0.02 + 0.001 * s, 0.05, (8, 2)) for s in range(stats.least_seeds("bca", crossed=False))]
    theta = stats.difference_of(stats.Strata.of(strata).values)
    ci = stats.estimate(strata, stats.difference_of, "bca", 0.95, null=0.0)
    expected = scipy_stats.bootstrap((theta,), np.mean, method="BCa", n_resamples=stats.BOOTSTRAP_RESAMPLES,
                                     rng=stats.BOOTSTRAP_SEED).confidence_interval
    assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high))
    assert 0 < ci.p < 1
    at_p = stats.estimate(strata, stats.difference_of, "bca", 1 - ci.p)
    assert min(abs(at_p.low), abs(at_p.high)) == pytest.approx(0.0, abs=1e-6)  # the interval at 1 - p touches 0


# Holm

def test_holm_on_four_p_values_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> made non-decreasing: 0.06
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # no test (NaN) is not in the family: m = 2
    found = significance.holm([0.01, math.nan, 0.04])
    assert found[0] == pytest.approx(0.02) and math.isnan(found[1]) and found[2] == pytest.approx(0.04)
    assert significance.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # at most 1


# permutation tests

def test_sign_flips_of_three_seeds_by_hand():
    """Sums over the 8 sign patterns of 0.1, 0.2, -0.05: +-0.35, +-0.25, +-0.15, +-0.05; |sum| >= 0.25 in 4."""
    assert significance.sign_flip([0.1, 0.2, -0.05]) == pytest.approx(0.5)
    assert significance.sign_flip([0.1, 0.2, 0.3]) == pytest.approx(significance.smallest_flip_p(3)) == 0.25
    assert significance.sign_flip([0.6, 0.7], null=0.5) == pytest.approx(0.5)  # win rates against 0.5
    assert math.isnan(significance.sign_flip([0.1]))


def test_the_trend_of_one_seed_is_spearmans_rho_over_the_k_factorial_orders():
    """n = 4: rho = -1 in 1 order of 24, |rho| >= 0.8 in 8 (rho = +-1 and the 3 adjacent swaps each way)."""
    rho, p = significance.trend(np.array([[0.9, 0.8, 0.7, 0.6]]))
    assert rho == -1 and p == pytest.approx(2 / 24)
    rho, p = significance.trend(np.array([[0.8, 0.9, 0.7, 0.6]]))
    assert rho == pytest.approx(-0.8) and p == pytest.approx(8 / 24)
    assert significance.smallest_trend_p(1, 4) == pytest.approx(2 / 24)


def test_the_trend_of_several_seeds_is_pages_exact_test():
    blocks = np.array([[0.9, 0.8, 0.7, 0.6], [0.8, 0.9, 0.6, 0.7], [0.9, 0.7, 0.8, 0.5]])
    rho, p = significance.trend(blocks)
    decreasing = scipy_stats.page_trend_test(blocks, predicted_ranks=[4, 3, 2, 1], method="exact").pvalue
    assert p == pytest.approx(2 * decreasing)
    assert rho == pytest.approx(np.mean([scipy_stats.spearmanr(range(4), b).statistic for b in blocks]))
    assert significance.trend(blocks[:, ::-1])[1] == pytest.approx(p)  # the same test, the other way


# power

def test_power_of_a_normal_difference():
    """With many degrees of freedom, the t test's power is the normal one: Phi(d / se - z) + Phi(-d / se - z)."""
    z = scipy_stats.norm.ppf(0.975)
    for shift in (0.5, 1.0, 2.8, 4.0):
        normal = scipy_stats.norm.cdf(shift - z) + scipy_stats.norm.cdf(-shift - z)
        assert significance.power(shift * 0.01, 0.01, 1e6, 0.05) == pytest.approx(normal, abs=1e-4)
    assert significance.power(0.0, 0.01, 5, 0.05) == pytest.approx(0.05)
    # 80 % power at z(0.975) + z(0.8) = 2.80 standard errors
    many = stats.Spread(seed_var=1e6 * 0.01 ** 2, seeds=10 ** 6)
    assert significance.detectable(many, 0.05) == pytest.approx((z + scipy_stats.norm.ppf(0.8)) * 0.01, rel=1e-3)


def test_seeds_needed_is_the_fewest_with_80_percent_power():
    spread = stats.Spread(seed_var=0.03 ** 2, seeds=3)
    needed = significance.seeds_needed(0.03, spread, 0.05)
    assert significance.power(0.03, spread.se(needed), spread.df(needed), 0.05) >= 0.8
    assert significance.power(0.03, spread.se(needed - 1), spread.df(needed - 1), 0.05) < 0.8
    assert 10 <= needed <= 12  # the normal approximation says 7.85; t with few degrees of freedom needs more
    # the same users on every seed: their variance does not shrink with seeds, and may keep the power below 80 %
    assert significance.seeds_needed(0.03, stats.Spread(0.03 ** 2, 3, user_var=0.02 ** 2, users=16), 0.05) is None
    assert significance.detectable(spread, 0.05, seeds=needed) <= 0.03 < significance.detectable(spread, 0.05)
