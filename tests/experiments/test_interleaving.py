"""Team-draft interleaving: the lists it builds, the credit it gives, and the sign test;
on simulated users it finds a planted better ranker with fewer users than an A/B test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from matchwise.errors import InvalidInput
from matchwise.experiments.interleaving import (
    credit,
    interleaving_seed,
    outcome,
    preference,
    team_draft,
)
from matchwise.experiments.simulation import (
    RankingWorld,
    ab_power,
    interleaving_power,
    users_for_power,
)

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None)

rankings = st.lists(st.integers(0, 15), max_size=12)


@PROPERTY
@given(a=rankings, b=rankings, length=st.integers(0, 20), seed=st.integers(0, 2**64 - 1))
def test_interleaved_lists_hold_each_item_once_and_keep_each_rankers_order(
    a: list[int], b: list[int], length: int, seed: int
) -> None:
    mixed = team_draft(a, b, length, seed)
    assert len(mixed.items) == len(mixed.teams)
    assert len(set(mixed.items)) == len(mixed.items)
    assert set(mixed.items) <= set(a) | set(b)
    assert len(mixed.items) == min(length, len(set(a) | set(b)))
    for team, ranking in (("a", a), ("b", b)):
        picks = [item for item, t in zip(mixed.items, mixed.teams, strict=True) if t == team]
        assert all(item in ranking for item in picks)
        positions = [ranking.index(item) for item in picks]
        assert positions == sorted(positions)
    # while both rankings still have items to give, the teams differ by at most one pick
    for end in range(1, len(mixed.items) + 1):
        shown = set(mixed.items[: end - 1])
        if any(x not in shown for x in a) and any(x not in shown for x in b):
            a_count = mixed.teams[:end].count("a")
            assert abs(2 * a_count - end) <= 1


@PROPERTY
@given(a=rankings, b=rankings, seed=st.integers(0, 2**64 - 1))
def test_each_pick_is_the_pickers_best_item_not_yet_shown(
    a: list[int], b: list[int], seed: int
) -> None:
    mixed = team_draft(a, b, 10, seed)
    for position, (item, team) in enumerate(zip(mixed.items, mixed.teams, strict=True)):
        ranking = a if team == "a" else b
        shown = set(mixed.items[:position])
        assert item == next(x for x in ranking if x not in shown)


def test_the_same_request_interleaves_the_same_way_and_coin_flips_vary() -> None:
    a, b = list(range(10)), list(range(9, -1, -1))
    seed = interleaving_seed("exp", "user-1", "req-1")
    assert seed == interleaving_seed("exp", "user-1", "req-1")
    assert team_draft(a, b, 10, seed) == team_draft(a, b, 10, seed)
    first_picks = {
        team_draft(a, b, 10, interleaving_seed("exp", "user-1", f"req-{i}")).teams[0]
        for i in range(50)
    }
    assert first_picks == {"a", "b"}


def test_identical_rankings_interleave_to_that_ranking() -> None:
    ranking = ["x", "y", "z", "w"]
    assert team_draft(ranking, ranking, 4, 1).items == tuple(ranking)


def test_credit_and_outcome() -> None:
    teams = ("a", "b", "b", "a")
    assert credit(teams, [0, 1, 2]) == (1, 2)
    assert credit(teams, [3, 3]) == (2, 0)
    assert outcome(1, 2) == "b" and outcome(2, 0) == "a" and outcome(0, 0) == "tie"
    with pytest.raises(InvalidInput):
        credit(teams, [4])


def test_preference_is_the_sign_test_on_decided_users() -> None:
    result = preference(["b"] * 30 + ["a"] * 14 + ["tie"] * 56)
    assert (result.wins_a, result.wins_b, result.ties) == (14, 30, 56)
    assert result.preference_b == pytest.approx(0.16)
    assert result.p_value == pytest.approx(stats.binomtest(30, 44, 0.5).pvalue)
    assert result.significant and result.winner == "b"
    assert preference(["tie", "tie"]).p_value == 1.0
    assert preference([]).winner == "tie"
    with pytest.raises(InvalidInput):
        preference(["c"])  # type: ignore[list-item]


def test_interleaving_finds_the_better_ranker_with_fewer_users_than_an_ab_test() -> None:
    """A small, fast version of benchmarks/experiments/run.py: B sees relevance through
    less noise; users click by relevance with position bias and differ in how much they
    click. Interleaving reaches 80% power with fewer users than an A/B test on CTR."""
    world = RankingWorld(n_candidates=20, list_length=6, noise_b=0.3, threshold=0.0)
    rng = np.random.default_rng(11)
    reps = 40
    interleaved = users_for_power(
        lambda n: interleaving_power(world, n, reps, rng), start=100, growth=2.0, max_users=6400
    )
    ab = users_for_power(
        lambda n: ab_power(world, n, reps, rng), start=100, growth=2.0, max_users=25_600
    )
    assert interleaved.users_needed is not None and ab.users_needed is not None
    assert interleaved.users_needed < ab.users_needed, (interleaved, ab)


def test_users_for_power_interpolates_between_the_bracketing_counts() -> None:
    curve = users_for_power(lambda n: min(1.0, n / 1200), start=100, growth=2.0)
    assert curve.users == (100, 200, 400, 800, 1600)
    assert curve.users_needed == pytest.approx(800 * 2**0.4)
    assert users_for_power(lambda n: 0.0, start=100, max_users=500).users_needed is None
