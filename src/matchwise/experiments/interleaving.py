"""Team-draft interleaving: two rankers share one list, and the user's clicks vote.

Radlinski, Kurup and Joachims ("How does clickthrough data reflect retrieval quality?",
CIKM 2008). Like captains picking teams, the ranker with fewer picks so far (a coin flip
on a tie) adds its best item not yet shown; each position remembers which team put it
there. A click (or like) on a position credits its team, and the team with more credit
wins the request. Because both rankers are judged by the same user on the same list at
the same moment, the comparison is paired and needs far fewer users than an A/B test,
where the difference between two groups of different users must rise above the users'
own spread (``benchmarks/experiments/run.py`` measures how many fewer).

The coin flips are seeded per request (:func:`interleaving_seed`), so the same request
gets the same list on every host and a logged request can be replayed. The unit of
analysis is the user: sum one user's credits over their requests and take one outcome per
user (:func:`outcome`), so a heavy user does not count as many independent votes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from scipy import stats

from matchwise.errors import InvalidInput

__all__ = [
    "Interleaved",
    "InterleavingResult",
    "Outcome",
    "Team",
    "credit",
    "interleaving_seed",
    "outcome",
    "preference",
    "team_draft",
]

T = TypeVar("T", bound=Hashable)
Team = Literal["a", "b"]
Outcome = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class Interleaved(Generic[T]):
    """The list to show and, position by position, the team that picked each item."""

    items: tuple[T, ...]
    teams: tuple[Team, ...]


def interleaving_seed(salt: str, user_id: str, request_id: str) -> int:
    """A 64-bit seed from ``sha256("{salt}:interleave:{user_id}:{request_id}")``: the same
    request interleaves the same way in every process."""
    digest = hashlib.sha256(f"{salt}:interleave:{user_id}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def team_draft(
    ranking_a: Sequence[T], ranking_b: Sequence[T], length: int, seed: int
) -> Interleaved[T]:
    """Interleave two rankings (best first) into at most ``length`` distinct items.

    Each round, the team with fewer picks picks (a seeded coin flip breaks ties); a team
    whose ranking has nothing left unshown yields to the other. The list ends at
    ``length`` items or when both rankings are used up. Within each team's picks the
    items keep that ranker's order.
    """
    if length < 0:
        raise InvalidInput("length must be >= 0")
    coin = random.Random(seed)
    shown: set[T] = set()
    items: list[T] = []
    teams: list[Team] = []
    next_a = next_b = 0
    picks_a = picks_b = 0
    while len(items) < length:
        while next_a < len(ranking_a) and ranking_a[next_a] in shown:
            next_a += 1
        while next_b < len(ranking_b) and ranking_b[next_b] in shown:
            next_b += 1
        a_left, b_left = next_a < len(ranking_a), next_b < len(ranking_b)
        if not (a_left or b_left):
            break
        a_turn = picks_a < picks_b or (picks_a == picks_b and coin.random() < 0.5)
        if (a_turn and not a_left) or (not a_turn and not b_left):
            a_turn = not a_turn
        team: Team = "a" if a_turn else "b"
        if a_turn:
            item = ranking_a[next_a]
            picks_a += 1
        else:
            item = ranking_b[next_b]
            picks_b += 1
        shown.add(item)
        items.append(item)
        teams.append(team)
    return Interleaved(tuple(items), tuple(teams))


def credit(teams: Sequence[Team], positions: Iterable[int]) -> tuple[int, int]:
    """Credit (a, b) from the 0-based positions the user clicked or liked.

    Each position given counts once per mention, so a caller that credits a like as well
    as a click on the same item passes that position twice.
    """
    credit_a = credit_b = 0
    for position in positions:
        if not (0 <= position < len(teams)):
            raise InvalidInput(f"position {position} is outside the list of {len(teams)}")
        if teams[position] == "a":
            credit_a += 1
        else:
            credit_b += 1
    return credit_a, credit_b


def outcome(credit_a: float, credit_b: float) -> Outcome:
    """Which ranker won: more credit wins; equal credit (including none) is a tie."""
    if credit_a > credit_b:
        return "a"
    if credit_b > credit_a:
        return "b"
    return "tie"


@dataclass(frozen=True)
class InterleavingResult:
    """Wins per ranker over users (or requests) and the sign test between them.

    ``preference_b`` is ``(wins_b - wins_a) / (wins_a + wins_b + ties)``, in [-1, 1]:
    positive when B is preferred. ``p_value`` is the two-sided exact binomial (sign) test
    of B's share of the decided outcomes against one half; ties carry no information on
    which ranker is better and are left out of the test (they still dilute the preference).
    """

    wins_a: int
    wins_b: int
    ties: int
    preference_b: float
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def winner(self) -> Outcome:
        """The preferred ranker when the test is significant, else "tie"."""
        if not self.significant:
            return "tie"
        return "b" if self.wins_b > self.wins_a else "a"


def preference(outcomes: Iterable[Outcome], alpha: float = 0.05) -> InterleavingResult:
    """Aggregate per-user outcomes into the preference and its sign-test p-value."""
    if not (0.0 < alpha < 1.0):
        raise InvalidInput(f"alpha must be in (0, 1), got {alpha}")
    counts = {"a": 0, "b": 0, "tie": 0}
    for result in outcomes:
        if result not in counts:
            raise InvalidInput(f"an outcome is 'a', 'b' or 'tie', got {result!r}")
        counts[result] += 1
    wins_a, wins_b, ties = counts["a"], counts["b"], counts["tie"]
    total = wins_a + wins_b + ties
    decided = wins_a + wins_b
    p_value = 1.0 if decided == 0 else float(stats.binomtest(wins_b, decided, 0.5).pvalue)
    return InterleavingResult(
        wins_a=wins_a,
        wins_b=wins_b,
        ties=ties,
        preference_b=0.0 if total == 0 else (wins_b - wins_a) / total,
        p_value=p_value,
        alpha=alpha,
    )
