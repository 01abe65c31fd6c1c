"""Elo desirability (Patra's elo_update): each swipe is a game the *target* plays.

The swiper's rating is the opponent's strength. A like is a win for the target, a pass
(reject, dislike) a loss, a superlike a win counted ``superlike_weight`` times. With
``E = expected(R_target, R_swiper)`` the target moves by ``K * w * (S - E)``, so

- a like from a highly rated swiper (low ``E``) raises the target more than a like from
  a low rated one, and a pass from a low rated swiper hurts more;
- the step is linear in ``K``; at equal ratings (``E = 0.5``) a like and a pass move the
  target by ``+K/2`` and ``-K/2``: equal and opposite.

Rating mass. As in Patra only the target is updated by default, so the total is *not*
conserved: a population that likes more often than the ratings predict inflates. With
``zero_sum=True`` the swiper moves by the opposite amount (chess Elo, where the loser
pays the winner), and the sum of all ratings is conserved exactly, swipe by swipe.

Elo is sequential: every update reads ratings that earlier swipes changed, so
:func:`update` replays a batch in time order in a tight loop over Python floats (about
a million swipes in one to three seconds) rather than as one NumPy expression, which
would silently read stale ratings whenever a person appears twice in a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from matchwise.errors import InvalidInput

__all__ = [
    "DEFAULT_RATING",
    "NEGATIVE_ACTIONS",
    "POSITIVE_ACTIONS",
    "League",
    "expected",
    "league_candidates",
    "league_score",
    "outcomes_from_actions",
    "ratings_from_swipes",
    "update",
]

log = logging.getLogger(__name__)

DEFAULT_RATING = 1500.0
#: Elo's logistic scale: a 400-point gap means 10:1 odds.
SCALE = 400.0
POSITIVE_ACTIONS: frozenset[str] = frozenset({"like", "superlike"})
NEGATIVE_ACTIONS: frozenset[str] = frozenset({"pass", "reject", "dislike", "block"})


def expected(r_a: np.ndarray | float, r_b: np.ndarray | float) -> np.ndarray:
    """Probability that a player rated ``r_a`` beats one rated ``r_b`` (broadcasts)."""
    diff = (np.asarray(r_b, dtype=np.float64) - np.asarray(r_a, dtype=np.float64)) / SCALE
    return 1.0 / (1.0 + np.power(10.0, diff))


def outcomes_from_actions(
    actions: Iterable[str], superlike_weight: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swipe actions to (outcome, weight, known): like 1, superlike 1 x weight, pass 0.

    ``known`` is false for actions that say nothing about desirability (views, matches...).
    """
    acts = pd.Series(list(actions), dtype=object).astype(str).str.lower().to_numpy()
    positive = np.isin(acts, list(POSITIVE_ACTIONS))
    negative = np.isin(acts, list(NEGATIVE_ACTIONS))
    outcome = positive.astype(np.float64)
    weight = np.where(acts == "superlike", float(superlike_weight), 1.0)
    return outcome, weight, positive | negative


def update(
    ratings: np.ndarray,
    actor_idx: np.ndarray | int,
    target_idx: np.ndarray | int,
    outcome: np.ndarray | float | str | Iterable[str],
    k_factor: float = 32.0,
    superlike_weight: float = 1.5,
    *,
    weight: np.ndarray | float | None = None,
    superlike: np.ndarray | bool | None = None,
    zero_sum: bool = False,
) -> np.ndarray:
    """Apply a time-ordered batch of swipes to ``ratings`` in place and return it.

    ``outcome`` is 1 (like: the target wins) or 0 (pass: the target loses); values in
    between are allowed (a half win). It may also be action names (``"like"``,
    ``"superlike"``, ``"pass"``, ``"reject"``...), in which case a superlike is a like
    weighted ``superlike_weight``. Otherwise each step is multiplied by ``weight`` when
    given, else by ``superlike_weight`` where ``superlike`` is true. With ``zero_sum`` the
    swiper moves by the opposite amount, which conserves the total rating.
    """
    if k_factor <= 0:
        raise InvalidInput(f"k_factor must be positive, got {k_factor}")
    if superlike_weight <= 0:
        raise InvalidInput(f"superlike_weight must be positive, got {superlike_weight}")
    if not isinstance(ratings, np.ndarray) or ratings.dtype.kind != "f":
        raise InvalidInput("ratings must be a float NumPy array (updated in place)")
    actors = np.atleast_1d(np.asarray(actor_idx, dtype=np.int64))
    targets = np.atleast_1d(np.asarray(target_idx, dtype=np.int64))
    n = len(actors)
    if isinstance(outcome, np.ndarray) and outcome.dtype.kind in "OUS":
        outcome = outcome.tolist()
    if isinstance(outcome, str) or _is_text(outcome):
        names = [outcome] * n if isinstance(outcome, str) else list(outcome)  # type: ignore[arg-type]
        codes, action_weight, known = outcomes_from_actions(names, superlike_weight)
        if not known.all():
            bad = names[int(np.flatnonzero(~known)[0])]
            raise InvalidInput(f"action {bad!r} is not a swipe (like, superlike, pass, reject)")
        outcome = codes
        weight = action_weight if weight is None else weight
    outcomes = np.broadcast_to(np.asarray(outcome, dtype=np.float64), (n,))
    if len(targets) != n:
        raise InvalidInput("actor_idx and target_idx must have the same length")
    if n == 0:
        return ratings
    if ((outcomes < 0) | (outcomes > 1) | np.isnan(outcomes)).any():
        raise InvalidInput("outcome must be in [0, 1] (1 = like, 0 = pass)")
    for name, idx in (("actor_idx", actors), ("target_idx", targets)):
        if idx.min() < 0 or idx.max() >= len(ratings):
            raise InvalidInput(f"{name} out of range [0, {len(ratings)})")
    if weight is not None:
        weights = np.broadcast_to(np.asarray(weight, dtype=np.float64), (n,))
    elif superlike is not None:
        flags = np.broadcast_to(np.asarray(superlike, dtype=bool), (n,))
        weights = np.where(flags, float(superlike_weight), 1.0)
    else:
        weights = np.ones(n)
    if (weights < 0).any():
        raise InvalidInput("swipe weights must be non-negative")

    steps = (float(k_factor) * weights).tolist()
    r = ratings.tolist()  # Python floats: the sequential loop is 20x faster than on NumPy
    for s, t, o, k in zip(actors.tolist(), targets.tolist(), outcomes.tolist(), steps, strict=True):
        rt = r[t]
        delta = k * (o - 1.0 / (1.0 + 10.0 ** ((r[s] - rt) / SCALE)))
        r[t] = rt + delta
        if zero_sum:
            r[s] -= delta
    ratings[:] = r
    return ratings


def ratings_from_swipes(
    frame: pd.DataFrame,
    k_factor: float = 32.0,
    superlike_weight: float = 1.5,
    initial: float = DEFAULT_RATING,
    *,
    ratings: Mapping[str, float] | None = None,
    zero_sum: bool = False,
    actor_column: str = "user_id",
    target_column: str = "target_user_id",
    action_column: str = "action",
    time_column: str = "occurred_at",
) -> dict[str, float]:
    """Replay a swipe log in time order into ``{person id: rating}``.

    Rows whose action says nothing about desirability (views, matches...) or that have no
    target are skipped; ``ratings`` seeds known people (others, and stored None/NaN, start
    at ``initial``). Ties
    in time keep the frame's order, so a replay is deterministic.
    """
    for column in (actor_column, target_column, action_column):
        if column not in frame.columns:
            raise InvalidInput(f"swipe frame has no {column!r} column")
    log_frame = frame
    if time_column in frame.columns:
        log_frame = frame.sort_values(time_column, kind="stable")
    outcome, weight, known = outcomes_from_actions(log_frame[action_column], superlike_weight)
    has_target = log_frame[target_column].notna().to_numpy()
    keep = known & has_target
    actors = log_frame[actor_column].to_numpy()[keep].astype(str)
    targets = log_frame[target_column].to_numpy()[keep].astype(str)
    start = dict(ratings or {})
    ids = pd.unique(np.concatenate([np.array(list(start), dtype=str), actors, targets]))
    index = pd.Index(ids)
    values = np.array([_rating(start.get(i), initial) for i in ids], dtype=np.float64)
    update(
        values,
        index.get_indexer(actors),
        index.get_indexer(targets),
        outcome[keep],
        k_factor=k_factor,
        weight=weight[keep],
        zero_sum=zero_sum,
    )
    log.debug("Elo replay: %d swipes over %d people", int(keep.sum()), len(ids))
    return dict(zip(ids.tolist(), values.tolist(), strict=True))


def _rating(value: object, initial: float) -> float:
    """A stored rating, or ``initial`` where none is stored (None / NaN)."""
    if value is None:
        return float(initial)
    number = float(value)  # type: ignore[arg-type]
    return float(initial) if np.isnan(number) else number


def _is_text(values: object) -> bool:
    """A non-empty list/tuple whose first element is a string (action names)."""
    return isinstance(values, list | tuple) and len(values) > 0 and isinstance(values[0], str)


@dataclass(frozen=True)
class League:
    """League matching for one user: a closeness score in [0, 1] and who may be shown."""

    score: np.ndarray
    mask: np.ndarray
    explored: np.ndarray


def league_candidates(
    ratings_of_candidates: np.ndarray,
    user_rating: float,
    width: float = 200.0,
    explore: float = 0.1,
    seed: int | np.random.Generator | None = None,
    *,
    received: np.ndarray | None = None,
    new_after: int = 10,
) -> League:
    """Favour candidates near the user's own rating, with exploration.

    ``score`` is a Gaussian closeness ``exp(-gap² / 2σ²)``; ``mask`` admits candidates
    within ``width`` points. ``received`` (swipes each candidate received) widens σ for
    people whose rating is still uncertain, ``σ = width * sqrt(1 + new_after / (received
    + 1))``, and anyone with fewer than ``new_after`` swipes is always admitted, so new
    users get exposure. Of the rest, a seeded random share ``explore`` is admitted too
    (``explored`` marks them), so the league never walls anyone in for good.
    """
    if not 0.0 <= explore <= 1.0:
        raise InvalidInput(f"explore must be in [0, 1], got {explore}")
    r = np.asarray(ratings_of_candidates, dtype=np.float64)
    score, gap = _closeness(r, float(user_rating), width, received, new_after)
    is_new = np.zeros(len(r), dtype=bool) if received is None else (
        np.asarray(received, dtype=np.float64) < new_after)  # fmt: skip
    inside = (gap <= width) | is_new
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    explored = ~inside & (rng.random(len(r)) < explore)
    return League(score=score, mask=inside | explored, explored=explored)


def league_score(
    ratings_of_candidates: np.ndarray,
    user_ratings: np.ndarray | float,
    width: float = 200.0,
    *,
    received: np.ndarray | None = None,
    new_after: int = 10,
) -> np.ndarray:
    """:func:`league_candidates`' closeness score alone, for many users at once
    (``user_ratings`` one per candidate, or one for all): no draw for who is explored."""
    r = np.asarray(ratings_of_candidates, dtype=np.float64)
    return _closeness(r, user_ratings, width, received, new_after)[0]


def _closeness(
    r: np.ndarray, user_ratings: np.ndarray | float, width: float,
    received: np.ndarray | None, new_after: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``exp(-gap² / 2σ²)`` and the rating gap (NaN gaps count as 0: in league)."""
    if width <= 0:
        raise InvalidInput(f"league width must be positive, got {width}")
    gap = np.abs(r - np.asarray(user_ratings, dtype=np.float64))
    gap = np.where(np.isnan(gap), 0.0, gap)  # an unknown rating is treated as in league
    sigma = np.full(len(r), float(width))
    if received is not None:
        counts = np.asarray(received, dtype=np.float64)
        if counts.shape != r.shape:
            raise InvalidInput("received must have one count per candidate")
        sigma = sigma * np.sqrt(1.0 + new_after / (np.maximum(counts, 0.0) + 1.0))
    return np.exp(-0.5 * (gap / sigma) ** 2), gap
