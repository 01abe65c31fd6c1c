"""Elo, pinned down exactly: defaults, boundaries and messages that mutation testing found
unchecked (`make mutation`, TESTING.md), and the definition as a property."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchwise.errors import InvalidInput
from matchwise.models.elo import (
    DEFAULT_RATING,
    expected,
    league_candidates,
    outcomes_from_actions,
    ratings_from_swipes,
    update,
)

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _pair(actor: float = 1500.0, target: float = 1500.0) -> np.ndarray:
    return np.array([actor, target], dtype=np.float64)


# --- defaults ---------------------------------------------------------------------------------
def test_defaults_k_32_and_superlike_one_and_a_half() -> None:
    assert update(_pair(), 0, 1, 1.0)[1] == 1516.0  # K = 32: +K/2 at equal ratings
    assert update(_pair(), 0, 1, "superlike")[1] == 1524.0  # 1.5 x 16
    outcome, weight, known = outcomes_from_actions(["superlike", "like", "pass", "view"])
    assert outcome.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert weight.tolist() == [1.5, 1.0, 1.0, 1.0]
    assert known.tolist() == [True, True, True, False]
    frame = pd.DataFrame({"user_id": ["a", "b"], "target_user_id": ["c", "d"]})
    ratings = ratings_from_swipes(frame.assign(action=["like", "superlike"]))
    assert ratings["c"] == 1516.0 and ratings["d"] == 1524.0


def test_action_names_use_the_given_superlike_weight() -> None:
    assert update(_pair(), 0, 1, "superlike", superlike_weight=2.0)[1] == 1532.0
    assert update(_pair(), 0, 1, ["superlike"], superlike_weight=2.0)[1] == 1532.0
    frame = pd.DataFrame({"user_id": ["a"], "target_user_id": ["c"], "action": ["superlike"]})
    assert ratings_from_swipes(frame, superlike_weight=2.0)["c"] == 1532.0
    # an explicit weight wins over the action's
    assert update(_pair(), 0, 1, "superlike", weight=3.0)[1] == 1500.0 + 3 * 16
    # superlike flags: weighted where true, 1 where false
    both = update(np.full(3, 1500.0), [0, 0], [1, 2], 1.0, superlike=[True, False])
    assert both.tolist() == [1500.0, 1524.0, 1516.0]
    assert update(_pair(), 0, 1, 1.0, superlike=[False])[1] == 1516.0


# --- inputs update() accepts ------------------------------------------------------------------
def test_outcomes_as_names_in_lists_and_arrays() -> None:
    expected_ratings = [1500.0, 1516.0, 1484.0]
    for outcome in (
        ["like", "pass"],
        np.array(["like", "pass"]),
        np.array(["like", "pass"], object),
    ):
        ratings = update(np.full(3, 1500.0), [0, 0], [1, 2], outcome)
        assert ratings.tolist() == expected_ratings
    # numeric outcomes in an array are used as they are
    assert update(np.full(3, 1500.0), [0, 0], [1, 2], np.array([1, 0])).tolist() == (
        expected_ratings
    )


def test_index_arrays_of_floats_and_an_empty_batch() -> None:
    ratings = update(_pair(), np.array([0.0]), np.array([1.0]), 1.0)
    assert ratings[1] == 1516.0
    empty = _pair()
    assert update(empty, [], [], []) is empty
    assert empty.tolist() == [1500.0, 1500.0]


def test_weights_may_be_zero_or_fractional_but_not_negative() -> None:
    assert update(_pair(), 0, 1, 1.0, weight=0.0)[1] == 1500.0
    assert update(_pair(), 0, 1, 1.0, weight=0.5)[1] == 1508.0
    with pytest.raises(InvalidInput, match="^swipe weights must be non-negative$"):
        update(_pair(), 0, 1, 1.0, weight=-1.0)


def test_k_and_superlike_weight_need_only_be_positive() -> None:
    assert update(_pair(), 0, 1, 1.0, k_factor=0.5)[1] == 1500.25
    assert update(_pair(), 0, 1, "superlike", superlike_weight=0.5)[1] == 1508.0
    assert update(_pair(), 0, 1, "superlike", superlike_weight=1.0)[1] == 1516.0
    with pytest.raises(InvalidInput, match="^superlike_weight must be positive, got 0$"):
        update(_pair(), 0, 1, 1.0, superlike_weight=0)
    with pytest.raises(InvalidInput, match="^k_factor must be positive, got -1$"):
        update(_pair(), 0, 1, 1.0, k_factor=-1)


def test_update_messages_name_the_problem() -> None:
    ratings = _pair()
    with pytest.raises(
        InvalidInput, match=r"^ratings must be a float NumPy array \(updated in place\)$"
    ):
        update([1500.0, 1500.0], 0, 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="^actor_idx and target_idx must have the same length$"):
        update(ratings, [0, 1], [1], 1.0)
    with pytest.raises(InvalidInput, match=r"^outcome must be in \[0, 1\] \(1 = like, 0 = pass\)$"):
        update(ratings, 0, 1, -0.5)
    with pytest.raises(InvalidInput, match=r"^outcome must be in \[0, 1\]"):
        update(ratings, 0, 1, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"^actor_idx out of range \[0, 2\)$"):
        update(ratings, 2, 1, 1.0)
    with pytest.raises(InvalidInput, match=r"^target_idx out of range \[0, 2\)$"):
        update(ratings, 0, 2, 1.0)  # one past the end
    with pytest.raises(InvalidInput, match=r"^target_idx out of range"):
        update(ratings, 0, -1, 1.0)
    with pytest.raises(
        InvalidInput, match=r"^action 'view' is not a swipe \(like, superlike, pass, reject\)$"
    ):
        update(np.full(3, 1500.0), [0, 0], [1, 2], ["like", "view"])


# --- ratings_from_swipes ------------------------------------------------------------------------
def test_replay_passes_k_weights_and_zero_sum_through() -> None:
    frame = pd.DataFrame(
        {"user_id": ["a", "b"], "target_user_id": ["c", "c"], "action": ["superlike", "pass"]}
    )
    # no time column: the frame's order; a superlike weighted 1.5, K = 16
    ratings = ratings_from_swipes(frame, k_factor=16.0)
    first = 1500.0 + 16 * 1.5 * 0.5
    second = first + 16 * (0.0 - 1.0 / (1.0 + 10 ** ((1500.0 - first) / 400.0)))
    assert ratings == {"a": 1500.0, "b": 1500.0, "c": pytest.approx(second, abs=1e-9)}
    zero_sum = ratings_from_swipes(frame, k_factor=16.0, zero_sum=True)
    assert sum(zero_sum.values()) == pytest.approx(3 * DEFAULT_RATING, abs=1e-9)
    assert zero_sum["a"] == pytest.approx(1500.0 - 12.0)
    # the initial rating of people nobody seeded, and a stored NaN, are `initial`
    seeded = ratings_from_swipes(frame, ratings={"a": math.nan}, initial=1000.0)
    assert seeded["a"] == 1000.0 and seeded["b"] == 1000.0


def test_replay_ties_in_time_keep_the_frame_order() -> None:
    # 40 swipes at one instant: the replay must be the frame's order (a stable sort)
    rng = np.random.default_rng(5)
    people = [f"p{i}" for i in range(6)]
    actors = rng.choice(people, 40)
    targets = [people[(people.index(a) + 1 + int(rng.integers(5))) % 6] for a in actors]
    actions = rng.choice(["like", "pass", "superlike"], 40)
    frame = pd.DataFrame(
        {
            "user_id": actors,
            "target_user_id": targets,
            "action": actions,
            "occurred_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    in_order = ratings_from_swipes(frame.drop(columns="occurred_at"))
    assert ratings_from_swipes(frame) == in_order


def test_replay_logs_its_size(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame(
        {"user_id": ["a", "b", "a"], "target_user_id": ["b", "c", "c"], "action": ["like"] * 3}
    )
    with caplog.at_level(logging.DEBUG, logger="matchwise.models.elo"):
        ratings_from_swipes(frame)
    assert "Elo replay: 3 swipes over 3 people" in caplog.messages


# --- league ---------------------------------------------------------------------------------------
def test_league_score_is_the_gaussian_of_the_gap() -> None:
    league = league_candidates(np.array([1500.0, 1700.0, 1900.0]), 1500.0, explore=0.0)
    np.testing.assert_allclose(league.score, np.exp(-0.5 * np.array([0.0, 1.0, 4.0])), rtol=1e-12)
    # default width 200: 200 points away is in, 200.5 is out
    edge = league_candidates(np.array([1700.0, 1700.5, 1299.5]), 1500.0, explore=0.0)
    assert edge.mask.tolist() == [True, False, False]
    assert league_candidates([1500.5], 1500.0, width=0.5, explore=0.0).mask.tolist() == [True]


def test_league_unknown_ratings_are_in_and_score_one() -> None:
    league = league_candidates(np.array([np.nan, 2500.0]), 1500.0, explore=0.0)
    assert league.score[0] == 1.0 and league.mask.tolist() == [True, False]
    from_store = league_candidates([None, 1500.0], 1500.0, explore=0.0)  # type: ignore[list-item]
    assert from_store.score.tolist() == [1.0, 1.0]


def test_league_uncertainty_widens_sigma_exactly() -> None:
    candidates = np.array([1800.0, 1800.0, 1800.0, 1800.0])
    received = np.array([0, 4, 9, 10])
    league = league_candidates(candidates, 1500.0, explore=0.0, received=received)
    sigma = 200.0 * np.sqrt(1.0 + 10.0 / (received + 1.0))
    np.testing.assert_allclose(league.score, np.exp(-0.5 * (300.0 / sigma) ** 2), rtol=1e-12)
    # fewer than new_after (10) swipes received: always admitted; 10 is no longer new
    assert league.mask.tolist() == [True, True, True, False]
    # a negative count is treated as none
    negative = league_candidates(np.array([1800.0]), 1500.0, explore=0.0, received=np.array([-3]))
    assert negative.score[0] == pytest.approx(league.score[0], rel=1e-12)
    with pytest.raises(InvalidInput, match="^received must have one count per candidate$"):
        league_candidates(candidates, 1500.0, received=np.array([1, 2]))


def test_league_explore_default_share_and_bounds() -> None:
    far = np.full(4000, 5000.0)
    share = league_candidates(far, 1500.0, seed=3).explored.mean()
    assert 0.08 < share < 0.12  # the default explore is 0.1
    everyone = league_candidates(far, 1500.0, explore=1.0, seed=3)
    assert everyone.explored.all() and everyone.mask.all()
    with pytest.raises(InvalidInput, match=r"^explore must be in \[0, 1\], got 1.5$"):
        league_candidates(far, 1500.0, explore=1.5)
    with pytest.raises(InvalidInput, match="^league width must be positive, got 0$"):
        league_candidates(far, 1500.0, width=0)


# --- the definition, as a property --------------------------------------------------------------
ratings_st = st.floats(min_value=100.0, max_value=3000.0, allow_nan=False)


@PROPERTY
@given(a=ratings_st, b=ratings_st, k=st.floats(min_value=0.5, max_value=64.0))
def test_one_swipe_is_k_times_outcome_minus_expected(a: float, b: float, k: float) -> None:
    e = float(expected(b, a))  # the target b's chance against the swiper a
    assert 0.0 < e < 1.0
    assert e == pytest.approx(1.0 / (1.0 + 10 ** ((a - b) / 400.0)))
    assert float(expected(a, b)) + e == pytest.approx(1.0)
    like = update(_pair(a, b), 0, 1, 1.0, k_factor=k)
    passed = update(_pair(a, b), 0, 1, 0.0, k_factor=k)
    assert like[1] - b == pytest.approx(k * (1.0 - e), abs=1e-9)
    assert passed[1] - b == pytest.approx(-k * e, abs=1e-9)
    assert like[0] == passed[0] == a
    assert b < like[1] <= b + k and b - k <= passed[1] < b
