"""Population stability index and served coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matchwise.errors import InvalidInput
from matchwise.experiments.drift import (
    PSI_MAJOR,
    PSI_MODERATE,
    categorical_psi,
    feature_psi,
    numeric_psi,
    psi_from_shares,
    served_coverage,
)

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)

samples = arrays(
    np.float64,
    st.integers(1, 60),
    elements=st.one_of(
        st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, float("nan"), float("inf"), -float("inf")])
    ),
)


@PROPERTY
@given(reference=samples, current=samples, bins=st.integers(1, 12))
def test_psi_is_never_negative_and_zero_for_identical_samples(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> None:
    assert numeric_psi(reference, current, bins) >= 0.0
    assert math.isfinite(numeric_psi(reference, current, bins))
    assert numeric_psi(reference, reference, bins) == 0.0
    shuffled = np.random.default_rng(0).permutation(reference)
    assert numeric_psi(reference, shuffled, bins) == 0.0
    assert numeric_psi(reference, np.concatenate([reference, reference]), bins) == pytest.approx(
        0.0, abs=1e-12
    )


@PROPERTY
@given(
    reference=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=40),
    current=st.lists(st.sampled_from(["a", "b", "d", None]), min_size=1, max_size=40),
)
def test_categorical_psi_is_never_negative_and_zero_for_identical_samples(
    reference: list[str | None], current: list[str | None]
) -> None:
    assert categorical_psi(reference, current) >= 0.0
    assert categorical_psi(reference, reference) == 0.0
    assert categorical_psi(reference, list(reversed(reference))) == 0.0


def test_psi_matches_its_formula() -> None:
    ref, cur = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    expected = float(np.sum((cur - ref) * np.log(cur / ref)))
    assert psi_from_shares([50, 30, 20], [4, 4, 2]) == pytest.approx(expected)
    # an empty bin is floored at epsilon, finite
    assert psi_from_shares([1, 0], [0, 1], epsilon=1e-4) == pytest.approx(
        2 * (1 - 1e-4) * math.log(1 / 1e-4)
    )


def test_quantile_bins_give_the_usual_readings() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, 20_000)
    assert numeric_psi(train, rng.normal(0, 1, 20_000)) < 0.01
    assert PSI_MODERATE < numeric_psi(train, rng.normal(0.4, 1, 20_000)) < PSI_MAJOR
    assert numeric_psi(train, rng.normal(1.0, 1, 20_000)) > PSI_MAJOR
    assert numeric_psi(train, rng.normal(0, 2, 20_000)) > PSI_MAJOR  # same mean, wider


def test_a_constant_training_feature_that_moves_is_seen_on_either_side() -> None:
    constant = np.zeros(1000)
    assert numeric_psi(constant, np.zeros(300)) == 0.0
    assert numeric_psi(constant, np.full(300, 1.0)) > PSI_MAJOR
    assert numeric_psi(constant, np.full(300, -1.0)) > PSI_MAJOR
    flags = np.array([0.0] * 900 + [1.0] * 100)
    assert numeric_psi(flags, np.array([0.0] * 45 + [1.0] * 5)) == pytest.approx(0.0)
    assert numeric_psi(flags, np.array([0.0] * 50 + [1.0] * 50)) > PSI_MAJOR


def test_missing_values_are_a_bin_of_their_own() -> None:
    values = np.arange(100, dtype=float)
    half_missing = np.where(values < 50, values, np.nan)
    assert numeric_psi(values, half_missing) > PSI_MAJOR
    assert categorical_psi(["a", "b"] * 50, ["a", None] * 50) > PSI_MAJOR
    assert numeric_psi([np.nan, np.nan], [np.nan]) == 0.0


def test_feature_psi_picks_numeric_or_categorical_per_feature() -> None:
    rng = np.random.default_rng(2)
    reference = {"age": rng.normal(30, 5, 2000), "city": np.array(["paris", "rome"] * 1000)}
    current = {"age": rng.normal(30, 5, 2000), "city": np.array(["paris"] * 1500 + ["oslo"] * 500)}
    result = feature_psi(reference, current)
    assert result["age"] < PSI_MODERATE
    assert result["city"] > PSI_MAJOR
    assert result["city"] == pytest.approx(
        categorical_psi(reference["city"].tolist(), current["city"].tolist())
    )
    with pytest.raises(InvalidInput):
        feature_psi(reference, {"age": current["age"]})


def test_infinite_values_fall_in_the_end_bins() -> None:
    values = np.r_[np.arange(100.0), [np.inf] * 60, [-np.inf] * 5]
    with np.errstate(all="raise"):
        assert numeric_psi(values, values) == 0.0
        assert numeric_psi(values, np.arange(100.0)) > PSI_MAJOR  # the infinities vanished
        assert numeric_psi(np.full(30, np.inf), np.full(30, np.inf)) == 0.0


def test_psi_refuses_empty_samples() -> None:
    with pytest.raises(InvalidInput):
        numeric_psi([], [1.0])
    with pytest.raises(InvalidInput):
        categorical_psi(["a"], [])
    with pytest.raises(InvalidInput):
        numeric_psi([1.0], [1.0], bins=0)


def test_served_coverage_is_metrics_catalogue_coverage_on_ids() -> None:
    served = [["a", "b"], ["b", "gone"], []]
    assert served_coverage(served, ["a", "b", "c", "d"]) == 0.5
    assert served_coverage([], ["a"]) == 0.0
    with pytest.raises(InvalidInput):
        served_coverage(served, [])
