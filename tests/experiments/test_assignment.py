"""Arm assignment: stable across processes and hash seeds, proportional to the weights,
reshuffled by a new salt, and stable for users already in when coverage grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from matchwise.errors import InvalidInput
from matchwise.experiments.assignment import arm_for_uniform, assign_arm, assign_arms, unit_uniform

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)
SRC = Path(__file__).resolve().parents[2] / "src"
ARMS = [("control", 1.0), ("ranker_v2", 1.0), ("blend", 2.0)]
USERS = [f"user-{i}" for i in range(20_000)]

_CHILD = """
import json, sys
from matchwise.experiments.assignment import assign_arm
arms = [("control", 1.0), ("ranker_v2", 1.0), ("blend", 2.0)]
users = [f"user-{i}" for i in range(2000)]
print(json.dumps([assign_arm("exp-1", u, arms, coverage=0.7) for u in users]))
"""


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_assignment_is_identical_in_another_process_with_another_hash_seed(hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    here = [assign_arm("exp-1", f"user-{i}", ARMS, coverage=0.7) for i in range(2000)]
    assert json.loads(done.stdout) == here


def test_unit_uniform_is_a_fixed_function_of_its_inputs() -> None:
    """Pinned values: a change to the hashing (and so to every user's arm) fails here."""
    assert unit_uniform("exp-1", "user-1") == pytest.approx(0.07272912700243983, abs=0)
    assert 0.0 <= unit_uniform("s", "u", "coverage") < 1.0
    assert unit_uniform("exp-1", "user-1") != unit_uniform("exp-1", "user-1", "coverage")


def test_proportions_follow_the_weights_within_binomial_bounds() -> None:
    counts = Counter(assign_arm("exp-1", u, ARMS) for u in USERS)
    n = len(USERS)
    for name, weight in ARMS:
        p = weight / 4.0
        low, high = stats.binom.ppf([0.0005, 0.9995], n, p)
        assert low <= counts[name] <= high, (name, counts)
    assert sum(counts.values()) == n


def test_coverage_sends_the_right_share_to_the_default() -> None:
    arms = [(name, weight) for name, weight in ARMS]
    outside = sum(assign_arm("exp-1", u, arms, coverage=0.3) is None for u in USERS)
    low, high = stats.binom.ppf([0.0005, 0.9995], len(USERS), 0.7)
    assert low <= outside <= high
    assert all(assign_arm("exp-1", u, arms, coverage=0.0) is None for u in USERS[:500])
    assert all(assign_arm("exp-1", u, arms, coverage=1.0) is not None for u in USERS[:500])


def test_assigning_many_users_at_once_gives_each_users_own_arm() -> None:
    users = USERS[:3000]
    for coverage in (0.0, 0.4, 1.0):
        many = assign_arms("exp-1", users, ARMS, coverage)
        assert many == [assign_arm("exp-1", u, ARMS, coverage) for u in users]
    with pytest.raises(InvalidInput):
        assign_arms("exp-1", users, ARMS, 2.0)


def test_a_new_salt_reshuffles_users() -> None:
    first = [assign_arm("exp-1", u, ARMS) for u in USERS[:4000]]
    second = [assign_arm("exp-2", u, ARMS) for u in USERS[:4000]]
    same = sum(a == b for a, b in zip(first, second, strict=True))
    # independent draws agree with probability sum(p^2) = 0.375
    low, high = stats.binom.ppf([0.0005, 0.9995], 4000, 0.375)
    assert low <= same <= high


def test_raising_coverage_keeps_everyone_already_in_on_their_arm() -> None:
    before = {u: assign_arm("exp-1", u, ARMS, coverage=0.1) for u in USERS}
    after = {u: assign_arm("exp-1", u, ARMS, coverage=0.5) for u in USERS}
    kept_in = [u for u, arm in before.items() if arm is not None]
    assert kept_in and all(after[u] == before[u] for u in kept_in)
    assert sum(a is not None for a in after.values()) > 3 * len(kept_in)


def test_bad_splits_are_refused() -> None:
    for arms in ([], [("a", 1.0), ("a", 1.0)], [("a", 0.0)], [("a", float("nan"))], [("", 1.0)]):
        with pytest.raises(InvalidInput):
            assign_arm("s", "u", arms)
    for coverage in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidInput):
            assign_arm("s", "u", ARMS, coverage=coverage)


arm_lists = st.lists(
    st.tuples(st.text(min_size=1, max_size=5), st.floats(0.01, 100.0)),
    min_size=1,
    max_size=6,
    unique_by=lambda arm: arm[0],
)


@PROPERTY
@given(arms=arm_lists, u=st.floats(0.0, 1.0, exclude_max=True))
def test_every_uniform_lands_in_exactly_the_arm_whose_interval_holds_it(
    arms: list[tuple[str, float]], u: float
) -> None:
    """The weights partition [0, 1): the chosen arm's interval holds u, in order."""
    total = sum(w for _, w in arms)
    name = arm_for_uniform(u, arms)
    index = [n for n, _ in arms].index(name)
    start = sum(w for _, w in arms[:index]) / total
    end = sum(w for _, w in arms[: index + 1]) / total
    assert start - 1e-12 <= u
    assert u < end + 1e-12 or index == len(arms) - 1


@PROPERTY
@given(arms=arm_lists, salt=st.text(max_size=8), user=st.text(max_size=8))
def test_each_user_gets_one_declared_arm_or_the_default(
    arms: list[tuple[str, float]], salt: str, user: str
) -> None:
    arm = assign_arm(salt, user, arms, coverage=0.5)
    assert arm is None or arm in {n for n, _ in arms}
    assert assign_arm(salt, user, arms, coverage=1.0) in {n for n, _ in arms}
