"""Elo desirability: right direction, linear and symmetric in K, mass where the maths says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matchwise.data.synthetic import generate_people
from matchwise.errors import InvalidInput
from matchwise.models.elo import (
    DEFAULT_RATING,
    expected,
    league_candidates,
    league_score,
    ratings_from_swipes,
    update,
)


def _one(
    actor: float, target: float, outcome: float | str, k: float = 32.0, **kw: object
) -> np.ndarray:
    ratings = np.array([actor, target], dtype=np.float64)
    return update(ratings, [0], [1], outcome, k_factor=k, **kw)  # type: ignore[arg-type]


def test_expected_is_a_probability_and_symmetric() -> None:
    assert expected(1500, 1500) == pytest.approx(0.5)
    assert expected(1900, 1500) == pytest.approx(10 / 11)
    a, b = np.array([1200.0, 1500, 2100]), np.array([1600.0, 1500, 1400])
    np.testing.assert_allclose(expected(a, b) + expected(b, a), 1.0)


def test_like_raises_pass_lowers_and_only_the_target_moves() -> None:
    liked = _one(1500, 1500, 1.0)
    passed = _one(1500, 1500, 0.0)
    assert liked[1] > 1500 > passed[1]
    assert liked[0] == passed[0] == 1500  # Patra: the swiper is not updated


def test_a_like_from_a_highly_rated_swiper_counts_more() -> None:
    from_star = _one(1900, 1500, 1.0)[1] - 1500
    from_newbie = _one(1100, 1500, 1.0)[1] - 1500
    assert from_star > from_newbie > 0
    # and a pass from a low rated swiper hurts more than one from a star
    assert (1500 - _one(1100, 1500, 0.0)[1]) > (1500 - _one(1900, 1500, 0.0)[1]) > 0


@pytest.mark.parametrize("actor,target", [(1500, 1500), (1800, 1300), (1200, 2000)])
def test_step_is_linear_in_k(actor: float, target: float) -> None:
    for outcome in (0.0, 1.0):
        step32 = _one(actor, target, outcome, k=32)[1] - target
        step64 = _one(actor, target, outcome, k=64)[1] - target
        step8 = _one(actor, target, outcome, k=8)[1] - target
        assert step64 == pytest.approx(2 * step32)
        assert step8 == pytest.approx(step32 / 4)


@pytest.mark.parametrize("k", [8.0, 32.0, 50.0])
def test_like_and_pass_at_equal_ratings_are_equal_and_opposite(k: float) -> None:
    up = _one(1500, 1500, 1.0, k=k)[1] - 1500
    down = _one(1500, 1500, 0.0, k=k)[1] - 1500
    assert up == pytest.approx(k / 2)
    assert down == pytest.approx(-k / 2)
    # in general: a like and a pass move by K*(1-E) and -K*E, which sum to K*(1-2E)
    e = float(expected(1700, 1500))
    assert (_one(1500, 1700, 1.0, k=k)[1] - 1700) + (_one(1500, 1700, 0.0, k=k)[1] - 1700) == (
        pytest.approx(k * (1 - 2 * e))
    )


def test_superlike_is_a_like_weighted() -> None:
    like = _one(1500, 1500, "like")[1] - 1500
    superlike = _one(1500, 1500, "superlike", superlike_weight=1.5)[1] - 1500
    assert superlike == pytest.approx(1.5 * like)
    flagged = _one(1500, 1500, 1.0, superlike=True, superlike_weight=2.0)[1] - 1500
    assert flagged == pytest.approx(2 * like)
    assert _one(1500, 1500, "reject")[1] == pytest.approx(1500 - 16)


def _random_batch(n: int = 40, swipes: int = 500, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    actors = rng.integers(0, n, swipes)
    targets = (actors + rng.integers(1, n, swipes)) % n
    outcomes = (rng.random(swipes) < 0.3).astype(float)
    ratings = rng.normal(1500, 150, n)
    return ratings, actors, targets, outcomes


def test_zero_sum_conserves_total_rating_patra_mode_does_not() -> None:
    ratings, actors, targets, outcomes = _random_batch()
    total = ratings.sum()
    zero_sum = update(ratings.copy(), actors, targets, outcomes, zero_sum=True)
    assert zero_sum.sum() == pytest.approx(total, abs=1e-6)
    # only the target moves in Patra's rule: mass is created by likes the ratings did not
    # predict and destroyed by unexpected passes, so the total drifts
    target_only = update(ratings.copy(), actors, targets, outcomes)
    assert abs(target_only.sum() - total) > 1.0


def test_a_batch_equals_swipes_applied_one_by_one() -> None:
    ratings, actors, targets, outcomes = _random_batch(n=10, swipes=200, seed=3)
    batch = update(ratings.copy(), actors, targets, outcomes)
    one_by_one = ratings.copy()
    for a, t, o in zip(actors, targets, outcomes, strict=True):
        update(one_by_one, a, t, o)
    np.testing.assert_allclose(batch, one_by_one)
    # the order matters: a reversed batch ends elsewhere
    reversed_ = update(ratings.copy(), actors[::-1], targets[::-1], outcomes[::-1])
    assert not np.allclose(batch, reversed_)


def test_update_rejects_bad_input() -> None:
    ratings = np.full(3, 1500.0)
    with pytest.raises(InvalidInput, match="out of range"):
        update(ratings, [0], [5], 1.0)
    with pytest.raises(InvalidInput, match="k_factor"):
        update(ratings, [0], [1], 1.0, k_factor=0)
    with pytest.raises(InvalidInput, match="not a swipe"):
        update(ratings, [0], [1], ["view"])
    with pytest.raises(InvalidInput, match="outcome"):
        update(ratings, [0], [1], 2.0)
    with pytest.raises(InvalidInput, match="float"):
        update(np.array([1500, 1500]), [0], [1], 1.0)
    assert update(ratings, [], [], 1.0) is ratings


def test_ratings_from_swipes_replays_in_time_order() -> None:
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "a", "b"],
            "target_user_id": ["c", "c", "a", "b", None],
            "action": ["like", "superlike", "pass", "view", "like"],
            "occurred_at": [t0 + pd.Timedelta(minutes=m) for m in (3, 1, 2, 4, 5)],
        }
    )
    ratings = ratings_from_swipes(frame, k_factor=32)
    assert set(ratings) == {"a", "b", "c"}
    assert ratings["c"] > DEFAULT_RATING > ratings["a"]
    assert ratings["b"] == DEFAULT_RATING  # a view says nothing; a row without target skipped
    shuffled = ratings_from_swipes(frame.sample(frac=1.0, random_state=1), k_factor=32)
    assert shuffled == pytest.approx(ratings)
    seeded = ratings_from_swipes(frame, ratings={"a": 1800.0, "z": 1400.0, "b": None})
    assert seeded["z"] == 1400.0 and seeded["a"] < 1800.0 and seeded["b"] == DEFAULT_RATING
    with pytest.raises(InvalidInput, match="target_user_id"):
        ratings_from_swipes(frame.drop(columns="target_user_id"))


def test_ratings_recover_hidden_attractiveness() -> None:
    bundle = generate_people(n_users=300, n_swipes=5_000, seed=7)
    ratings = ratings_from_swipes(bundle.interactions)
    truth = bundle.meta["truth"]["users"]["attractiveness"]
    received = bundle.interactions["target_user_id"].value_counts()
    ids = [i for i in truth.index if received.get(i, 0) >= 10]
    rho = pd.Series([ratings[i] for i in ids]).corr(
        truth.loc[ids].reset_index(drop=True), "spearman"
    )
    assert rho > 0.5


def test_league_prefers_nearby_ratings_and_explores() -> None:
    candidates = np.array([1500.0, 1550, 1700, 1900, 2300, np.nan])
    league = league_candidates(candidates, 1500, width=200, explore=0.0, seed=0)
    assert np.all(np.diff(league.score[:5]) < 0)
    assert league.score[0] == pytest.approx(1.0)
    assert league.mask.tolist() == [True, True, True, False, False, True]
    # new people (few swipes received) are always admitted and scored more leniently
    received = np.array([50, 50, 50, 50, 2, 50])
    lenient = league_candidates(candidates, 1500, width=200, explore=0.0, received=received)
    assert lenient.mask[4] and lenient.score[4] > league.score[4]
    # exploration admits a seeded share of the rest
    many = np.linspace(1000, 3000, 2000)
    explored = league_candidates(many, 1500, width=100, explore=0.1, seed=42)
    outside = np.abs(many - 1500) > 100
    share = explored.explored[outside].mean()
    assert 0.07 < share < 0.13
    again = league_candidates(many, 1500, width=100, explore=0.1, seed=42)
    np.testing.assert_array_equal(explored.mask, again.mask)
    with pytest.raises(InvalidInput):
        league_candidates(many, 1500, width=0)


def test_league_score_of_many_users_is_each_users_own() -> None:
    """The closeness alone, a user rating per candidate (a refresh block's pairs): each
    pair scores as in that user's own league, received swipes and unknown ratings alike."""
    rng = np.random.default_rng(3)
    candidates = np.append(rng.normal(1500, 200, 30), np.nan)
    received = rng.integers(0, 40, len(candidates))
    users = np.array([1400.0, 1500.0, 1720.0, np.nan])
    pairs = league_score(np.tile(candidates, len(users)), np.repeat(users, len(candidates)),
                         received=np.tile(received, len(users)))  # fmt: skip
    for i, user in enumerate(users):
        alone = league_candidates(candidates, user, explore=0.0, received=received).score
        np.testing.assert_array_equal(pairs[i * len(candidates) : (i + 1) * len(candidates)],
                                      alone)  # fmt: skip
    with pytest.raises(InvalidInput):
        league_score(candidates, 1500.0, width=0)
