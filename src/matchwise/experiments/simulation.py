"""Synthetic users for checking the experiment statistics against known truth.

Two worlds, both seeded and vectorised over users:

- :func:`simulate_users`: per-user impressions and clicks with a heterogeneous per-user
  CTR (Beta distributed), the shape that makes impression-level statistics lie. Used for
  A/A false-positive rates, planted lifts and the sample-size calculator.
- :class:`RankingWorld`: queries with graded relevance, two rankers that see relevance
  through different amounts of noise (B less, so B is truly better), and a
  position-biased click model (a user examines position k with probability
  ``1 / (k + 1) ** position_bias`` and clicks an examined item with probability
  ``sigmoid(steepness * (relevance - threshold))``). :func:`ab_power` and
  :func:`interleaving_power` estimate how often each design detects B with the right
  sign; :func:`users_for_power` finds the users each needs for a target power.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from matchwise.errors import InvalidInput
from matchwise.experiments.interleaving import credit, outcome, preference, team_draft
from matchwise.experiments.stats import compare, estimate

__all__ = [
    "PowerCurve",
    "RankingWorld",
    "UserModel",
    "ab_power",
    "interleaving_power",
    "simulate_users",
    "users_for_power",
]


@dataclass(frozen=True)
class UserModel:
    """Per-user CTR ~ Beta(mean_ctr * concentration, (1 - mean_ctr) * concentration);
    impressions ~ 1 + Poisson(mean_impressions - 1). A low concentration means users
    differ a lot, which is when per-impression statistics are most wrong."""

    mean_ctr: float = 0.05
    concentration: float = 10.0
    mean_impressions: float = 8.0


def simulate_users(
    rng: np.random.Generator, n_users: int, model: UserModel, lift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(clicks, impressions) per user; ``lift`` multiplies every user's CTR by
    ``1 + lift`` (capped at 1)."""
    a = model.mean_ctr * model.concentration
    b = (1 - model.mean_ctr) * model.concentration
    ctr = np.minimum(rng.beta(a, b, n_users) * (1 + lift), 1.0)
    impressions = 1 + rng.poisson(model.mean_impressions - 1, n_users)
    return rng.binomial(impressions, ctr).astype(np.float64), impressions.astype(np.float64)


@dataclass(frozen=True)
class RankingWorld:
    """One query per user over ``n_candidates`` items, a list of ``list_length`` shown.

    Users differ in how much they click at all: each has an activity factor ~ Beta with
    mean ``activity_mean`` and concentration ``activity_concentration`` (2: uniform)
    multiplying every click probability, as real users range from browsers to
    clickers. That spread is noise an A/B test must average away and interleaving, which
    compares both rankers within each user, does not see.
    """

    n_candidates: int = 30
    list_length: int = 10
    noise_a: float = 1.0
    noise_b: float = 0.7
    position_bias: float = 1.0
    steepness: float = 1.5
    threshold: float = 1.0
    activity_mean: float = 0.5
    activity_concentration: float = 2.0

    def queries(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        """(relevance, top list of A, top list of B) per user."""
        relevance = rng.standard_normal((n, self.n_candidates))
        score_a = relevance + self.noise_a * rng.standard_normal(relevance.shape)
        score_b = relevance + self.noise_b * rng.standard_normal(relevance.shape)
        top_a = np.argsort(-score_a, axis=1)[:, : self.list_length]
        top_b = np.argsort(-score_b, axis=1)[:, : self.list_length]
        return relevance, top_a, top_b

    def clicks(
        self, rng: np.random.Generator, relevance: np.ndarray, shown: np.ndarray
    ) -> np.ndarray:
        """Boolean clicks on each shown position under the position-biased model."""
        rows = np.arange(shown.shape[0])[:, None]
        activity = np.asarray(
            rng.beta(
                self.activity_mean * self.activity_concentration,
                (1 - self.activity_mean) * self.activity_concentration,
                shown.shape[0],
            )
        )
        attraction = 1.0 / (
            1.0 + np.exp(-self.steepness * (relevance[rows, shown] - self.threshold))
        )
        examine = 1.0 / (1.0 + np.arange(shown.shape[1])) ** self.position_bias
        return rng.random(shown.shape) < activity[:, None] * attraction * examine[None, :]


def ab_power(
    world: RankingWorld, n_users: int, reps: int, rng: np.random.Generator, alpha: float = 0.05
) -> float:
    """Share of ``reps`` A/B tests (``n_users`` split half and half, CTR per user, Welch on
    users) that find B better with p < alpha."""
    half = n_users // 2
    if half < 2:
        raise InvalidInput("an A/B test needs at least two users per arm")
    shown_per_user = float(world.list_length)
    detected = 0
    for _ in range(reps):
        rel_a, top_a, _ = world.queries(rng, half)
        rel_b, _, top_b = world.queries(rng, half)
        clicks_a = world.clicks(rng, rel_a, top_a).sum(axis=1)
        clicks_b = world.clicks(rng, rel_b, top_b).sum(axis=1)
        result = compare(
            estimate(clicks_a, np.full(half, shown_per_user)),
            estimate(clicks_b, np.full(half, shown_per_user)),
            alpha,
        )
        detected += result.significant and result.difference > 0
    return detected / reps


def interleaving_power(
    world: RankingWorld, n_users: int, reps: int, rng: np.random.Generator, alpha: float = 0.05
) -> float:
    """Share of ``reps`` interleaving experiments (``n_users`` users, one team-draft list
    each, clicks credited to the teams, sign test over users) that find B better."""
    detected = 0
    for _ in range(reps):
        relevance, top_a, top_b = world.queries(rng, n_users)
        seeds = rng.integers(0, 2**63 - 1, n_users)
        lists = [
            team_draft(a.tolist(), b.tolist(), world.list_length, int(seed))
            for a, b, seed in zip(top_a, top_b, seeds, strict=True)
        ]
        shown = np.array([lst.items for lst in lists])
        clicked = world.clicks(rng, relevance, shown)
        outcomes = [
            outcome(*credit(lst.teams, np.flatnonzero(row).tolist()))
            for lst, row in zip(lists, clicked, strict=True)
        ]
        result = preference(outcomes, alpha)
        detected += result.winner == "b"
    return detected / reps


@dataclass(frozen=True)
class PowerCurve:
    """Estimated power at each user count tried, and the interpolated users needed."""

    users: tuple[int, ...]
    power: tuple[float, ...]
    users_needed: float | None


def users_for_power(
    power_at: Callable[[int], float],
    target: float = 0.8,
    start: int = 50,
    growth: float = 1.5,
    max_users: int = 1_000_000,
) -> PowerCurve:
    """Grow the user count geometrically until the estimated power reaches ``target``,
    then interpolate linearly in log users between the last two points. None when
    ``max_users`` is reached first."""
    users: list[int] = []
    power: list[float] = []
    n = start
    while n <= max_users:
        users.append(n)
        power.append(power_at(n))
        if power[-1] >= target:
            break
        n = int(math.ceil(n * growth))
    else:
        return PowerCurve(tuple(users), tuple(power), None)
    if len(users) == 1 or power[-1] == power[-2]:
        return PowerCurve(tuple(users), tuple(power), float(users[-1]))
    lo, hi = math.log(users[-2]), math.log(users[-1])
    share = (target - power[-2]) / (power[-1] - power[-2])
    needed = math.exp(lo + min(max(share, 0.0), 1.0) * (hi - lo))
    return PowerCurve(tuple(users), tuple(power), needed)
