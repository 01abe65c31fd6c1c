"""Experiment statistics by definition: each against its textbook formula or scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from matchwise.errors import InvalidInput
from matchwise.experiments.stats import (
    compare,
    estimate,
    group_sequential_boundaries,
    group_sequential_look,
    mixing_variance_for,
    obrien_fleming_spending,
    sample_ratio_mismatch,
    sample_size_mean,
    sample_size_proportion,
    sequential_compare,
)


def test_a_unit_denominator_gives_the_mean_and_its_standard_error() -> None:
    x = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 3.0])
    arm = estimate(x)
    assert arm.value == pytest.approx(x.mean())
    assert arm.std_error == pytest.approx(x.std(ddof=1) / math.sqrt(len(x)))
    low, high = arm.interval(0.05)
    half = stats.t.ppf(0.975, len(x) - 1) * arm.std_error
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half))


def test_a_ratio_uses_the_delta_method_on_users() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(1, 20, 500).astype(float)
    x = rng.binomial(y.astype(int), rng.beta(1, 9, 500)).astype(float)
    arm = estimate(x, y)
    n, r = len(x), x.sum() / y.sum()
    cov = np.cov(x, y, ddof=1)
    delta_var = (cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / (n * y.mean() ** 2)
    assert arm.value == pytest.approx(r)
    assert arm.std_error**2 == pytest.approx(delta_var)
    # clustered users: wider than the binomial error that treats impressions as independent
    assert arm.std_error > math.sqrt(r * (1 - r) / y.sum())


def test_compare_is_welchs_t_test() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.0, 1.0, 80), rng.normal(0.4, 2.0, 120)
    result = compare(estimate(a), estimate(b))
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.difference == pytest.approx(b.mean() - a.mean())
    assert result.df == pytest.approx(reference.df)
    low, high = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    assert result.relative == pytest.approx((b.mean() - a.mean()) / a.mean())


def test_compare_without_variance() -> None:
    same = compare(estimate([1.0, 1.0]), estimate([1.0, 1.0]))
    assert same.p_value == 1.0 and not same.significant
    assert compare(estimate([1.0, 1.0]), estimate([2.0, 2.0])).p_value == 0.0


def test_estimate_refuses_what_it_cannot_estimate() -> None:
    for args in (([1.0], None), ([1.0, 2.0], [0.0, 0.0]), ([1.0, 2.0], [1.0]),
                 ([1.0, float("nan")], None), ([1.0, 1.0], [1.0, -1.0])):  # fmt: skip
        with pytest.raises(InvalidInput):
            estimate(*args)


def test_srm_is_the_chi_squared_goodness_of_fit() -> None:
    arms = [("control", 1.0), ("treatment", 1.0), ("blend", 2.0)]
    counts = {"control": 260, "treatment": 240, "blend": 480}
    check = sample_ratio_mismatch(counts, arms)
    reference = stats.chisquare([260, 240, 480], [245, 245, 490])
    assert check.chi2 == pytest.approx(reference.statistic)
    assert check.p_value == pytest.approx(reference.pvalue)
    assert not check.flagged
    assert sample_ratio_mismatch({"control": 450, "treatment": 550}, arms[:2]).p_value < 0.01
    assert sample_ratio_mismatch({"control": 4500, "treatment": 5500}, arms[:2]).flagged
    assert sample_ratio_mismatch({}, arms).p_value == 1.0
    assert sample_ratio_mismatch({"control": 450}, arms[:2], threshold=0.05).flagged
    with pytest.raises(InvalidInput):
        sample_ratio_mismatch({"other": 3}, arms)


def test_the_mixing_variance_makes_the_sequence_narrowest_at_the_horizon() -> None:
    horizon = 0.01
    tau2 = mixing_variance_for(horizon, alpha=0.05)

    def width(t2: float) -> float:
        return (horizon * (horizon + t2) / t2) * (2 * math.log(20) + math.log1p(t2 / horizon))

    assert tau2 / horizon == pytest.approx(8.21, abs=0.01)
    assert width(tau2) < width(tau2 * 1.1) and width(tau2) < width(tau2 / 1.1)


def test_sequential_looks_keep_the_running_minimum_and_intersection() -> None:
    rng = np.random.default_rng(5)
    a_all, b_all = rng.normal(0, 1, 4000), rng.normal(0.05, 1, 4000)
    tau2 = mixing_variance_for(2 / 4000)
    previous = None
    for n in range(400, 4001, 400):
        result = sequential_compare(estimate(a_all[:n]), estimate(b_all[:n]), tau2, 0.05, previous)
        assert result.ci_low <= result.ci_high
        if previous is not None:
            assert result.p_value <= previous.p_value
            assert previous.ci_low <= result.ci_low and result.ci_high <= previous.ci_high
            assert result.looks == previous.looks + 1
        previous = result
    fixed = compare(estimate(a_all), estimate(b_all))
    # always valid costs width: the sequence is wider than the fixed-horizon interval
    assert (
        previous is not None and previous.ci_high - previous.ci_low > fixed.ci_high - fixed.ci_low
    )
    with pytest.raises(InvalidInput):
        sequential_compare(estimate(a_all), estimate(b_all), tau2 * 2, 0.05, previous)


def test_sequential_p_value_is_the_inverse_mixture_likelihood_ratio() -> None:
    a, b = estimate([0.0, 1.0, 2.0, 1.0]), estimate([1.0, 2.0, 3.0, 2.5])
    v = a.std_error**2 + b.std_error**2
    d, tau2 = b.value - a.value, 0.5
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * d**2 / (2 * v * (v + tau2)))
    assert sequential_compare(a, b, tau2).p_value == pytest.approx(min(1.0, 1 / lam))


def test_sample_sizes_follow_the_formulas() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert sample_size_mean(2.0, 0.1) == math.ceil(2 * z**2 * 4 / 0.01)
    assert sample_size_mean(2.0, 0.1, baseline=1.0, relative=True) == sample_size_mean(2.0, 0.1)
    p1, p2 = 0.10, 0.12
    pooled = (p1 + p2) / 2
    root = stats.norm.ppf(0.975) * math.sqrt(2 * pooled * (1 - pooled)) + stats.norm.ppf(
        0.8
    ) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    assert sample_size_proportion(0.10, 0.02) == math.ceil(root**2 / 0.02**2) == 3841
    assert sample_size_proportion(0.10, 0.2, relative=True) == 3841
    assert sample_size_proportion(0.10, -0.02) > 0
    for bad in ({"baseline": 0.0, "mde": 0.1}, {"baseline": 0.95, "mde": 0.1},
                {"baseline": 0.1, "mde": 0.0}):  # fmt: skip
        with pytest.raises(InvalidInput):
            sample_size_proportion(**bad)
    with pytest.raises(InvalidInput):
        sample_size_mean(1.0, 0.1, relative=True)


@pytest.mark.parametrize("fractions", [[k / 10 for k in range(1, 11)], [0.2, 0.45, 0.7, 1.0]])
def test_group_sequential_boundaries_spend_exactly_alpha(fractions: list[float]) -> None:
    """Monte Carlo on a Brownian motion at the looks: the chance of crossing at any look
    is alpha (and the chance by each look is the alpha spent by then)."""
    boundaries = np.array(group_sequential_boundaries(fractions, 0.05))
    rng = np.random.default_rng(12)
    t = np.array(fractions)
    steps = rng.standard_normal((200_000, len(t))) * np.sqrt(np.diff(t, prepend=0.0))
    z = steps.cumsum(axis=1) / np.sqrt(t)
    crossed = np.maximum.accumulate(np.abs(z) >= boundaries, axis=1)
    for k, fraction in enumerate(fractions):
        assert crossed[:, k].mean() == pytest.approx(
            obrien_fleming_spending(fraction, 0.05), abs=0.002
        )
    assert boundaries[-1] > 1.96 and np.all(np.diff(boundaries) < 0)


def test_group_sequential_edges() -> None:
    assert group_sequential_boundaries([1.0]) == pytest.approx((stats.norm.isf(0.025),))
    assert group_sequential_boundaries([0.5, 1.0, 1.3])[-1] == math.inf
    for bad in ([0.5, 0.5], [0.0, 1.0], [0.6, 0.3]):
        with pytest.raises(InvalidInput):
            group_sequential_boundaries(bad)
    a, b = estimate([0.0, 1.0, 0.0, 1.0]), estimate([1.0, 2.0, 1.0, 3.0])
    look = group_sequential_look(a, b, 2.0)
    assert look.z == pytest.approx(look.difference / look.std_error)
    assert look.rejected == (abs(look.z) >= 2.0)
    assert look.ci_low == pytest.approx(look.difference - 2.0 * look.std_error)
    assert not group_sequential_look(a, b, math.inf).rejected
