"""Experiment statistics computed on users, the unit of randomisation.

Every metric is a ratio of per-user totals, ``sum(numerator) / sum(denominator)`` over an
arm's users: CTR is clicks over impressions, conversion per impression is conversions
over impressions, and a per-user rate (share of users who converted, match rate per user,
mean clicks per user) is the same thing with a denominator of one per user. The variance
comes from the delta method on per-user totals (Deng, Knoblich and Lu, "Applying the
Delta Method in Metric Analytics", KDD 2018), not from counting impressions as if they
were independent: one user's impressions are correlated (some users click much more than
others), and treating them as independent gives intervals that are too narrow and
false positives far above the nominal rate. The ratio of sums is chosen over the mean of
per-user ratios because it is the figure a product reports (the arm's CTR) and it weights
users by their traffic; with a unit denominator the two coincide.

What is here:

- :func:`estimate`: an arm's value, standard error and t interval.
- :func:`compare`: treatment minus control with a Welch interval and two-sided p-value.
- :func:`sample_ratio_mismatch`: chi-squared goodness of fit of users per arm against the
  declared weights; a flagged split means assignment or logging is broken and no result
  should be trusted (flag at p < 0.001 by default, the usual practice).
- :func:`sequential_compare`: an always-valid p-value and confidence sequence (mixture
  SPRT), so looking at the results every day does not inflate false positives.
- :func:`group_sequential_boundaries`, :func:`group_sequential_look`: the planned-horizon
  alternative (Lan-DeMets alpha spending), exact ``alpha`` over any looks before the
  planned size, for experiments that have one.
- :func:`sample_size_proportion`, :func:`sample_size_mean`: users needed per arm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from matchwise.errors import InvalidInput
from matchwise.experiments.assignment import Arm, validate_arms

__all__ = [
    "ArmEstimate",
    "Comparison",
    "GroupSequentialLook",
    "SampleRatioCheck",
    "SequentialResult",
    "compare",
    "estimate",
    "group_sequential_boundaries",
    "group_sequential_look",
    "mixing_variance_for",
    "obrien_fleming_spending",
    "sample_ratio_mismatch",
    "sample_size_mean",
    "sample_size_proportion",
    "sequential_compare",
]


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not (0.0 < alpha < 1.0):
        raise InvalidInput(f"{name} must be in (0, 1), got {alpha}")


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's ratio metric over its users.

    ``unit_sd`` is the standard deviation of the per-user linearised metric
    ``(x_i - value * y_i) / mean(y)``: the per-user spread the sample-size calculator
    needs (``std_error == unit_sd / sqrt(n_users)``).
    """

    n_users: int
    numerator: float
    denominator: float
    value: float
    std_error: float
    unit_sd: float

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Two-sided ``1 - alpha`` t interval (n_users - 1 degrees of freedom)."""
        _check_alpha(alpha)
        half = float(stats.t.ppf(1 - alpha / 2, self.n_users - 1)) * self.std_error
        return self.value - half, self.value + half


def estimate(numerators: ArrayLike, denominators: ArrayLike | None = None) -> ArmEstimate:
    """An arm's metric from per-user totals: one entry per user who was exposed.

    ``denominators`` None means one per user (a per-user mean, e.g. share converted).
    Users with a zero denominator count as users and add nothing to either sum.
    """
    x = np.asarray(numerators, dtype=np.float64).ravel()
    y = np.ones_like(x) if denominators is None else np.asarray(denominators, np.float64).ravel()
    if x.shape != y.shape:
        raise InvalidInput("numerators and denominators need one entry per user each")
    n = x.size
    if n < 2:
        raise InvalidInput("an arm needs at least two users for an estimate with an error")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (y < 0).any():
        raise InvalidInput("per-user totals must be finite and denominators non-negative")
    mean_y = float(y.mean())
    if mean_y <= 0:
        raise InvalidInput("the arm's denominators sum to zero: nothing to divide by")
    value = float(x.sum() / y.sum())
    linearised = (x - value * y) / mean_y
    unit_sd = float(linearised.std(ddof=1))
    return ArmEstimate(
        n_users=n,
        numerator=float(x.sum()),
        denominator=float(y.sum()),
        value=value,
        std_error=unit_sd / math.sqrt(n),
        unit_sd=unit_sd,
    )


@dataclass(frozen=True)
class Comparison:
    """Treatment minus control: the difference, its Welch interval and p-value.

    ``relative`` is the difference over the control's value (None when that is zero).
    """

    control: ArmEstimate
    treatment: ArmEstimate
    difference: float
    std_error: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    relative: float | None

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def _welch_df(a: ArmEstimate, b: ArmEstimate) -> float:
    va, vb = a.std_error**2, b.std_error**2
    denominator = va**2 / (a.n_users - 1) + vb**2 / (b.n_users - 1)
    if denominator == 0.0:
        return float(a.n_users + b.n_users - 2)
    return float((va + vb) ** 2 / denominator)


def compare(control: ArmEstimate, treatment: ArmEstimate, alpha: float = 0.05) -> Comparison:
    """Welch's unequal-variance t test on the two arms' estimates (the delta-method
    variances stand in for the per-arm variances; Welch-Satterthwaite degrees of freedom).

    With no variance in either arm the p-value is 1 for equal values and 0 otherwise.
    """
    _check_alpha(alpha)
    difference = treatment.value - control.value
    se = math.hypot(control.std_error, treatment.std_error)
    df = _welch_df(control, treatment)
    if se == 0.0:
        p_value, half = (1.0 if difference == 0.0 else 0.0), 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(difference) / se, df))
        half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return Comparison(
        control=control,
        treatment=treatment,
        difference=difference,
        std_error=se,
        df=df,
        ci_low=difference - half,
        ci_high=difference + half,
        p_value=min(1.0, p_value),
        alpha=alpha,
        relative=difference / control.value if control.value != 0 else None,
    )


@dataclass(frozen=True)
class SampleRatioCheck:
    """Users per arm against the declared split (arms in the declared order)."""

    arms: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float
    threshold: float

    @property
    def flagged(self) -> bool:
        """True when the split is too unlikely under the declared weights to trust."""
        return self.p_value < self.threshold


def sample_ratio_mismatch(
    counts: Mapping[str, int], arms: Sequence[Arm], threshold: float = 0.001
) -> SampleRatioCheck:
    """Chi-squared goodness of fit of users per arm against the declared weights.

    A missing arm counts zero users; a count for an arm that was not declared is refused
    (the caller is mixing experiments). With no users at all there is nothing to judge:
    the p-value is 1. ``threshold`` 0.001 is the common choice: SRM checks run on every
    experiment and every look, so a 5% threshold would cry wolf constantly.
    """
    validate_arms(arms)
    _check_alpha(threshold, "threshold")
    names = tuple(name for name, _ in arms)
    unknown = set(counts) - set(names)
    if unknown:
        raise InvalidInput(f"counts for undeclared arms: {sorted(unknown)}")
    observed = tuple(int(counts.get(name, 0)) for name in names)
    if any(c < 0 for c in observed):
        raise InvalidInput("user counts must be non-negative")
    total = sum(observed)
    weight_sum = math.fsum(w for _, w in arms)
    expected = tuple(total * w / weight_sum for _, w in arms)
    if total == 0 or len(arms) == 1:
        return SampleRatioCheck(names, observed, expected, 0.0, 1.0, threshold)
    chi2 = math.fsum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = float(stats.chi2.sf(chi2, len(arms) - 1))
    return SampleRatioCheck(names, observed, expected, chi2, p_value, threshold)


# --- always-valid inference ----------------------------------------------------------------
@dataclass(frozen=True)
class SequentialResult:
    """An always-valid look at treatment minus control.

    ``p_value`` is the running minimum over every look so far and ``ci_low``/``ci_high``
    the running intersection of the confidence sequence, so stopping at any look, chosen
    after seeing the data, keeps the false-positive rate at most ``alpha``. Pass the last
    result as ``previous`` to the next look; ``looks`` counts them.
    """

    difference: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    mixing_variance: float
    alpha: float
    looks: int

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def mixing_variance_for(variance_at_horizon: float, alpha: float = 0.05) -> float:
    """The mixing variance that makes the confidence sequence narrowest at the planned end.

    ``variance_at_horizon`` is the variance of the difference expected when the experiment
    reaches its planned size, e.g. ``unit_sd**2 * (1/n_control + 1/n_treatment)`` from a
    pilot or from :func:`sample_size_mean`'s inputs. The half-width is
    ``sqrt(V (1 + 1/r) (2 log(1/alpha) + log(1 + r)))`` with ``r = tau^2 / V``; it is
    smallest where ``r = 2 log(1/alpha) + log(1 + r)`` (about 8.2 for alpha 0.05), so
    ``tau^2 = r V``. Any positive value keeps the guarantee; this one spends the least
    width where the decision is planned. (Johari et al. instead suggest tau on the scale
    of the effects expected; both are valid.)
    """
    _check_alpha(alpha)
    if not (math.isfinite(variance_at_horizon) and variance_at_horizon > 0):
        raise InvalidInput("variance_at_horizon must be a positive number")
    r = 2 * math.log(1 / alpha)
    for _ in range(100):  # a contraction: converges in a handful of steps
        r = 2 * math.log(1 / alpha) + math.log1p(r)
    return r * variance_at_horizon


def sequential_compare(
    control: ArmEstimate,
    treatment: ArmEstimate,
    mixing_variance: float,
    alpha: float = 0.05,
    previous: SequentialResult | None = None,
) -> SequentialResult:
    """Mixture sequential probability ratio test for treatment minus control.

    The normal-mixture likelihood ratio of Johari, Pekelis and Walsh ("Always Valid
    Inference", 2017; the two-sided normal mixture boundary of Howard et al., 2021), with
    the difference approximately normal with variance ``V`` (the delta-method variances
    summed) and a N(0, tau^2) mixture over the true difference, ``tau^2 =
    mixing_variance``::

        Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))

    The p-value ``min(1, 1 / Lambda)`` and the set of differences with ``Lambda < 1/alpha``
    hold at every look at once (Ville's inequality), so they are conservative when looked
    at only a few times: the price of being allowed to look whenever one likes.
    """
    _check_alpha(alpha)
    if not (math.isfinite(mixing_variance) and mixing_variance > 0):
        raise InvalidInput("mixing_variance must be a positive number")
    if previous is not None and (previous.mixing_variance, previous.alpha) != (
        mixing_variance,
        alpha,
    ):
        raise InvalidInput("a sequential test keeps its mixing variance and alpha for every look")
    difference = treatment.value - control.value
    variance = control.std_error**2 + treatment.std_error**2
    tau2 = mixing_variance
    if variance == 0.0:
        p_value = 1.0 if difference == 0.0 else 0.0
        low = high = difference
    else:
        log_lambda = 0.5 * math.log(variance / (variance + tau2)) + tau2 * difference**2 / (
            2 * variance * (variance + tau2)
        )
        p_value = min(1.0, math.exp(-log_lambda)) if log_lambda < 700 else 0.0
        half = math.sqrt(
            variance
            * (variance + tau2)
            / tau2
            * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
        )
        low, high = difference - half, difference + half
    looks = 1
    if previous is not None:
        p_value = min(p_value, previous.p_value)
        looks = previous.looks + 1
        # the running intersection; an empty one (possible only where the normal
        # approximation fails) falls back to this look's interval
        if max(low, previous.ci_low) <= min(high, previous.ci_high):
            low, high = max(low, previous.ci_low), min(high, previous.ci_high)
    return SequentialResult(
        difference=difference,
        std_error=math.sqrt(variance),
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        mixing_variance=mixing_variance,
        alpha=alpha,
        looks=looks,
    )


# --- group sequential (planned horizon) ------------------------------------------------------
def obrien_fleming_spending(fraction: float, alpha: float = 0.05) -> float:
    """Alpha spent by information fraction ``t``: Lan and DeMets' O'Brien-Fleming-type
    function ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``. Spends almost nothing early, when
    estimates are noisy, and ``alpha`` at ``t = 1``."""
    _check_alpha(alpha)
    if fraction <= 0:
        return 0.0
    z = float(stats.norm.ppf(1 - alpha / 2))
    return float(2 - 2 * stats.norm.cdf(z / math.sqrt(min(fraction, 1.0))))


def _excess_crossing(
    c: float, t: float, sd: float, xs: np.ndarray, mass: np.ndarray, target: float
) -> float:
    """Chance of first crossing |z| = c at fraction t, from the continuation mass at the
    previous look (lattice ``xs``, ``mass`` = density x quadrature weight), minus target."""
    edge = c * math.sqrt(t)
    beyond = stats.norm.sf((edge - xs) / sd) + stats.norm.cdf((-edge - xs) / sd)
    return float(np.sum(mass * beyond)) - target


def group_sequential_boundaries(
    fractions: Sequence[float], alpha: float = 0.05, grid: int = 201
) -> tuple[float, ...]:
    """|z| boundaries for looks at the given information fractions (increasing, in
    (0, 1]; users seen over users planned), spending alpha by
    :func:`obrien_fleming_spending`.

    Under no effect the standardised difference at the looks is a Brownian motion sampled
    at those fractions; each boundary is solved so that the chance of crossing it for the
    first time at that look equals the alpha spent since the previous look. The crossing
    probabilities come from the density of the motion on the continuation region, carried
    look to look on a ``grid``-point lattice (201 points give boundaries to 1e-4). Looks
    may come at any fractions and their number need not be planned; only the horizon (the
    planned users) is fixed. Past the horizon no alpha is left: the boundary is infinite.
    """
    _check_alpha(alpha)
    if grid < 11:
        raise InvalidInput("grid must have at least 11 points")
    previous = 0.0
    for t in fractions:
        if not (previous < t) or not math.isfinite(t):
            raise InvalidInput("information fractions must be positive and increasing")
        previous = t
    boundaries: list[float] = []
    spent = 0.0
    xs = weights = density = np.empty(0)
    previous = 0.0
    for t in fractions:
        target = obrien_fleming_spending(t, alpha) - spent
        if target <= 1e-15:
            boundaries.append(math.inf)  # past the horizon: nothing left to spend
            continue
        if not boundaries:
            c = float(stats.norm.isf(target / 2))
        else:
            args = (t, math.sqrt(t - previous), xs, weights * density, target)
            if _excess_crossing(40.0, *args) >= 0:
                c = 40.0
            else:
                c = float(optimize.brentq(_excess_crossing, 1e-6, 40.0, args=args))
        edge = c * math.sqrt(t)
        new_xs = np.linspace(-edge, edge, grid)
        if not boundaries:
            density = stats.norm.pdf(new_xs, 0.0, math.sqrt(t))
        else:
            kernel = stats.norm.pdf(new_xs[None, :], xs[:, None], math.sqrt(t - previous))
            density = (weights * density) @ kernel
        xs = new_xs
        weights = np.full(grid, xs[1] - xs[0])
        weights[[0, -1]] *= 0.5  # trapezoid rule
        boundaries.append(c)
        spent += target
        previous = t
    return tuple(boundaries)


@dataclass(frozen=True)
class GroupSequentialLook:
    """One look of a group-sequential test: reject when ``|z| >= boundary`` (and stop).

    ``ci_low``/``ci_high`` is the repeated confidence interval ``difference +- boundary *
    std_error``, which covers the true difference at every look at once with probability
    ``1 - alpha``.
    """

    difference: float
    std_error: float
    z: float
    boundary: float
    ci_low: float
    ci_high: float

    @property
    def rejected(self) -> bool:
        return abs(self.z) >= self.boundary


def group_sequential_look(
    control: ArmEstimate, treatment: ArmEstimate, boundary: float
) -> GroupSequentialLook:
    """Treatment minus control judged against this look's boundary from
    :func:`group_sequential_boundaries`.

    The alternative to :func:`sequential_compare` when the experiment has a planned size:
    its false-positive rate is ``alpha`` over however many looks are taken before the
    horizon (the mixture SPRT's is well below ``alpha`` unless one looks continually), so
    it detects effects sooner, at the cost of a fixed horizon.
    """
    if not boundary > 0:
        raise InvalidInput("a boundary is a positive |z|")
    difference = treatment.value - control.value
    se = math.hypot(control.std_error, treatment.std_error)
    if se == 0.0:
        z = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    else:
        z = difference / se
    half = boundary * se if math.isfinite(boundary) else math.inf
    return GroupSequentialLook(difference, se, z, boundary, difference - half, difference + half)


# --- planning ------------------------------------------------------------------------------
def _effect(baseline: float | None, mde: float, relative: bool) -> float:
    if not (math.isfinite(mde) and mde != 0):
        raise InvalidInput("the minimum detectable effect must be a non-zero number")
    if not relative:
        return abs(mde)
    if baseline is None or baseline == 0:
        raise InvalidInput("a relative effect needs a non-zero baseline")
    return abs(mde * baseline)


def _z(alpha: float, power: float) -> tuple[float, float]:
    _check_alpha(alpha)
    _check_alpha(power, "power")
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def sample_size_proportion(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Users per arm to detect a change of a per-user rate (each user converts or not)
    from ``baseline`` by ``mde`` (absolute, or a fraction of the baseline when
    ``relative``) with a two-sided test at ``alpha`` and the given power.

    The classic two-proportion formula: pooled variance under the null, each arm's own
    under the alternative (Fleiss). Rounded up.
    """
    if not (0.0 < baseline < 1.0):
        raise InvalidInput(f"baseline must be a rate in (0, 1), got {baseline}")
    delta = _effect(baseline, mde, relative)
    p1 = baseline
    p2 = baseline + (delta if mde > 0 else -delta)
    if not (0.0 < p2 < 1.0):
        raise InvalidInput(f"baseline plus the effect leaves (0, 1): {p2}")
    z_alpha, z_power = _z(alpha, power)
    pooled = (p1 + p2) / 2
    root = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root**2 / delta**2)


def sample_size_mean(
    unit_sd: float,
    mde: float,
    *,
    baseline: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Users per arm for any per-user metric with per-user standard deviation ``unit_sd``
    (for a ratio metric, :attr:`ArmEstimate.unit_sd` from a pilot or a past period):
    ``2 (z_{1-alpha/2} + z_power)^2 sd^2 / mde^2``, rounded up. ``relative`` reads ``mde``
    as a fraction of ``baseline``.
    """
    if not (math.isfinite(unit_sd) and unit_sd > 0):
        raise InvalidInput("unit_sd must be a positive number")
    delta = _effect(baseline, mde, relative)
    z_alpha, z_power = _z(alpha, power)
    return math.ceil(2 * (z_alpha + z_power) ** 2 * unit_sd**2 / delta**2)
