"""The statistics tell the truth on synthetic users (issue 13, "Done when").

Users are assigned by :func:`assign_arms` (a fresh salt per experiment), each with a
Beta-distributed CTR of their own and several impressions, so one user's impressions are
correlated, as in real traffic. Seeded throughout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from matchwise.experiments.assignment import assign_arms
from matchwise.experiments.simulation import UserModel, simulate_users
from matchwise.experiments.stats import (
    compare,
    estimate,
    group_sequential_boundaries,
    group_sequential_look,
    mixing_variance_for,
    sample_ratio_mismatch,
    sample_size_mean,
    sample_size_proportion,
    sequential_compare,
)

MODEL = UserModel(mean_ctr=0.05, concentration=10.0, mean_impressions=8.0)
EXPERIMENTS = 200
USERS = 2000
LOOKS = 10
ARMS = [("control", 1.0), ("treatment", 1.0)]


def _horizon_variance(rng: np.random.Generator, users_per_arm: float) -> float:
    """The planned variance of the difference, from a pilot: what an operator would know."""
    pilot = estimate(*simulate_users(rng, 5000, MODEL))
    return pilot.unit_sd**2 * 2 / users_per_arm


@pytest.fixture(scope="module")
def aa_runs() -> dict[str, int]:
    """200 A/A experiments: rejections by the fixed test at the end, by the sequential test
    at any of 10 looks, by the fixed test at any of the same looks (naive peeking), and by
    a per-impression test that ignores users."""
    rng = np.random.default_rng(2026)
    tau2 = mixing_variance_for(_horizon_variance(rng, USERS / 2))
    # users arrive in order, so look k has seen k/10 of the planned users in every experiment
    boundaries = group_sequential_boundaries([k / LOOKS for k in range(1, LOOKS + 1)])
    rejected = {
        "fixed": 0,
        "sequential": 0,
        "group_sequential": 0,
        "naive_peeking": 0,
        "per_impression": 0,
    }
    for e in range(EXPERIMENTS):
        clicks, impressions = simulate_users(rng, USERS, MODEL)
        arm = np.array(assign_arms(f"aa-{e}", [f"u{i}" for i in range(USERS)], ARMS))
        sequential = None
        peeked = group_rejected = False
        for look in range(1, LOOKS + 1):
            n = USERS * look // LOOKS
            c, t = arm[:n] == "control", arm[:n] == "treatment"
            control = estimate(clicks[:n][c], impressions[:n][c])
            treatment = estimate(clicks[:n][t], impressions[:n][t])
            sequential = sequential_compare(control, treatment, tau2, 0.05, sequential)
            fixed = compare(control, treatment)
            peeked = peeked or fixed.significant
            look_result = group_sequential_look(control, treatment, boundaries[look - 1])
            group_rejected = group_rejected or look_result.rejected
        assert sequential is not None
        rejected["fixed"] += fixed.significant
        rejected["sequential"] += sequential.significant
        rejected["naive_peeking"] += peeked
        rejected["group_sequential"] += group_rejected
        pc, pt = control.value, treatment.value
        pooled = (control.numerator + treatment.numerator) / (
            control.denominator + treatment.denominator
        )
        se = math.sqrt(
            pooled * (1 - pooled) * (1 / control.denominator + 1 / treatment.denominator)
        )
        rejected["per_impression"] += abs(pt - pc) / se > 1.959964
    return rejected


def test_fixed_horizon_false_positive_rate_is_near_five_percent(aa_runs: dict[str, int]) -> None:
    assert 0.02 <= aa_runs["fixed"] / EXPERIMENTS <= 0.08, aa_runs


def test_sequential_test_holds_its_rate_under_peeking(aa_runs: dict[str, int]) -> None:
    """Ten looks, rejecting at any: the always-valid test stays at or below 5% (it is
    conservative with few looks, about 1% in theory at 10 looks, by design: the same
    guarantee holds with a look after every user), while the fixed test peeked at the same
    ten times rejects far more often than its nominal 5%."""
    assert aa_runs["sequential"] / EXPERIMENTS <= 0.08, aa_runs
    assert aa_runs["naive_peeking"] / EXPERIMENTS > 0.08, aa_runs
    assert aa_runs["naive_peeking"] > 2 * aa_runs["fixed"], aa_runs


def test_group_sequential_test_keeps_five_percent_over_ten_looks(aa_runs: dict[str, int]) -> None:
    """The planned-horizon alternative: alpha spent across the same ten looks, a
    false-positive rate near 5% rather than the always-valid test's ~1%."""
    assert 0.02 <= aa_runs["group_sequential"] / EXPERIMENTS <= 0.08, aa_runs


def test_counting_impressions_instead_of_users_inflates_false_positives(
    aa_runs: dict[str, int],
) -> None:
    """Why the unit is the user: a binomial test over impressions, blind to users' own
    click rates, rejects well above 5% on the same A/A data."""
    assert aa_runs["per_impression"] / EXPERIMENTS > 0.08, aa_runs


def test_a_planted_lift_is_detected_with_the_right_sign() -> None:
    rng = np.random.default_rng(7)
    n = 12_000
    arm = np.array(assign_arms("lift", [f"u{i}" for i in range(n)], ARMS))
    base_c, base_i = simulate_users(rng, n, MODEL)
    lift_c, lift_i = simulate_users(rng, n, MODEL, lift=0.15)
    t = arm == "treatment"
    clicks, impressions = np.where(t, lift_c, base_c), np.where(t, lift_i, base_i)
    control, treatment = estimate(clicks[~t], impressions[~t]), estimate(clicks[t], impressions[t])
    fixed = compare(control, treatment)
    assert fixed.significant and fixed.difference > 0 and fixed.ci_low > 0
    assert fixed.relative is not None and 0.05 < fixed.relative < 0.25
    sequential = sequential_compare(
        control, treatment, mixing_variance_for(_horizon_variance(rng, n / 2))
    )
    assert sequential.significant and sequential.ci_low > 0
    (boundary,) = group_sequential_boundaries([1.0])
    assert group_sequential_look(control, treatment, boundary).rejected
    flipped = compare(treatment, control)
    assert flipped.significant and flipped.difference < 0


def test_srm_flags_a_45_55_split_declared_50_50_and_mostly_not_a_true_one() -> None:
    rng = np.random.default_rng(8)
    n = 4000
    broken = [rng.binomial(n, 0.55) for _ in range(100)]
    flagged = [
        sample_ratio_mismatch({"control": n - k, "treatment": k}, ARMS).flagged for k in broken
    ]
    assert all(flagged)
    # a true 50/50 split by the real assignment: flagged about 0.1% of the time
    honest = 0
    for e in range(200):
        arms = assign_arms(f"srm-{e}", [f"u{i}" for i in range(USERS)], ARMS)
        counts = {"control": arms.count("control"), "treatment": arms.count("treatment")}
        honest += sample_ratio_mismatch(counts, ARMS).flagged
    assert honest <= 2


def test_the_sample_size_for_a_rate_gives_the_power_it_promises() -> None:
    rng = np.random.default_rng(9)
    n = sample_size_proportion(0.10, 0.02, alpha=0.05, power=0.8)
    reps = 1000
    detected = 0
    for _ in range(reps):
        a = (rng.random(n) < 0.10).astype(float)
        b = (rng.random(n) < 0.12).astype(float)
        result = compare(estimate(a), estimate(b))
        detected += result.significant and result.difference > 0
    assert abs(detected / reps - 0.8) < 0.04, detected / reps


def test_the_sample_size_for_a_ratio_metric_gives_the_power_it_promises() -> None:
    """CTR with heterogeneous users: the per-user spread from a pilot (delta method)
    sizes the experiment, and simulation shows about the promised 80% power."""
    rng = np.random.default_rng(10)
    pilot = estimate(*simulate_users(rng, 20_000, MODEL))
    n = sample_size_mean(pilot.unit_sd, 0.15, baseline=pilot.value, relative=True)
    reps = 400
    detected = 0
    for _ in range(reps):
        control = estimate(*simulate_users(rng, n, MODEL))
        treatment = estimate(*simulate_users(rng, n, MODEL, lift=0.15))
        result = compare(control, treatment)
        detected += result.significant and result.difference > 0
    assert abs(detected / reps - 0.8) < 0.06, (n, detected / reps)
