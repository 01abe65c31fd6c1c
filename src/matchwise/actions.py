"""The action vocabulary and its label/weight table: the one place actions are defined.

Labels follow seed 003 (apply 1.0 ... dislike 0.0); weights say how much an event
counts as evidence. Both are overridable from ``matchwise.yaml`` (``actions:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, Field


class Action(StrEnum):
    """Every interaction type matchwise understands."""

    IMPRESSION = "impression"
    VIEW = "view"
    CLICK = "click"
    LIKE = "like"
    SUPERLIKE = "superlike"
    PASS = "pass"
    REJECT = "reject"
    DISLIKE = "dislike"
    FAVORITE = "favorite"
    APPLY = "apply"
    INTEREST = "interest"
    REGISTER = "register"
    UNREGISTER = "unregister"
    ATTEND = "attend"
    SHARE = "share"
    DWELL = "dwell"
    SEARCH = "search"
    FILTER = "filter"
    RATE = "rate"
    MATCH = "match"
    BLOCK = "block"


class ActionRule(BaseModel):
    """How one action becomes a training label."""

    label: float | None = Field(
        description="Training label in [0, 1]; None means the action is not a training signal."
    )
    weight: float = Field(default=1.0, description="Confidence weight of the event as evidence.")
    positive: bool = Field(default=False, description="Counts as a positive for ranking metrics.")
    meaningful: bool = Field(
        default=False, description="Triggers a real-time refresh of the actor's recommendations."
    )


DEFAULT_ACTION_TABLE: dict[str, ActionRule] = {
    Action.APPLY: ActionRule(label=1.0, weight=3.0, positive=True, meaningful=True),
    Action.INTEREST: ActionRule(label=1.0, weight=3.5, positive=True, meaningful=True),
    Action.REGISTER: ActionRule(label=1.0, weight=3.0, positive=True, meaningful=True),
    Action.ATTEND: ActionRule(label=1.0, weight=3.5, positive=True, meaningful=True),
    Action.SUPERLIKE: ActionRule(label=1.0, weight=3.0, positive=True, meaningful=True),
    Action.MATCH: ActionRule(label=1.0, weight=3.0, positive=True),
    Action.FAVORITE: ActionRule(label=0.9, weight=2.5, positive=True, meaningful=True),
    Action.LIKE: ActionRule(label=0.8, weight=2.0, positive=True, meaningful=True),
    Action.SHARE: ActionRule(label=0.8, weight=1.5, positive=True, meaningful=True),
    Action.CLICK: ActionRule(label=0.6, weight=1.0, meaningful=True),
    Action.DWELL: ActionRule(label=0.5, weight=0.5),
    Action.VIEW: ActionRule(label=0.4, weight=0.5, meaningful=True),
    Action.RATE: ActionRule(label=None, weight=1.0),
    Action.IMPRESSION: ActionRule(label=None, weight=0.0),
    Action.SEARCH: ActionRule(label=None, weight=0.0, meaningful=True),
    Action.FILTER: ActionRule(label=None, weight=0.0, meaningful=True),
    Action.UNREGISTER: ActionRule(label=0.1, weight=1.0, meaningful=True),
    Action.PASS: ActionRule(label=0.0, weight=1.0, meaningful=True),
    Action.REJECT: ActionRule(label=0.0, weight=1.0, meaningful=True),
    Action.DISLIKE: ActionRule(label=0.0, weight=1.0, meaningful=True),
    Action.BLOCK: ActionRule(label=0.0, weight=2.0, meaningful=True),
}

#: Actions that mean "I have seen this candidate and decided": never recommend again.
DECIDED_ACTIONS: frozenset[str] = frozenset(
    {
        Action.LIKE,
        Action.SUPERLIKE,
        Action.PASS,
        Action.REJECT,
        Action.DISLIKE,
        Action.BLOCK,
        Action.APPLY,
        Action.REGISTER,
        Action.ATTEND,
        Action.MATCH,
        Action.RATE,
        Action.INTEREST,
        Action.FAVORITE,
    }
)

#: Swipes in the people domain: the actions that count as a decision about a person.
SWIPE_ACTIONS: frozenset[str] = frozenset(
    {Action.LIKE, Action.SUPERLIKE, Action.PASS, Action.REJECT, Action.DISLIKE}
)
LIKE_ACTIONS: frozenset[str] = frozenset({Action.LIKE, Action.SUPERLIKE})
#: Saying no to a person: the actor leaves that person's lists as well as the reverse.
REFUSAL_ACTIONS: frozenset[str] = frozenset(
    {Action.PASS, Action.REJECT, Action.DISLIKE, Action.BLOCK}
)
#: What someone did to a user that takes them out of the user's lists: a refusal, or a
#: match already made. A like does not: someone who liked you stays (that is a match).
HIDES_ACTOR_FROM_TARGET: frozenset[str] = REFUSAL_ACTIONS | {Action.MATCH}


def merge_action_table(overrides: Mapping[str, ActionRule] | None) -> dict[str, ActionRule]:
    """Return the default table with ``overrides`` applied; unknown actions are added."""
    table = {str(k): v for k, v in DEFAULT_ACTION_TABLE.items()}
    for name, rule in (overrides or {}).items():
        table[str(name).lower()] = rule
    return table
