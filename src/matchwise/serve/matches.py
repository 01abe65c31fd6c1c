"""A person's matches for the app's matches screen: the other person, when, and how the
match came about, newest first, a page at a time. The route and ``matchwise matches``
both call :func:`matches_of`."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from matchwise.actions import LIKE_ACTIONS, Action
from matchwise.db import queries
from matchwise.db.tables import Interaction, Match, User
from matchwise.schemas import MatchesOut, MatchOut, MatchType


def matches_of(session: Session, user_id: str, limit: int = 100, offset: int = 0) -> MatchesOut:
    """``user_id``'s matches, newest first, from ``offset``; ``NotFound`` for an unknown
    (or erased) user.

    Never lists someone who is not shown right now (deactivated, held or removed by
    moderation) or with a block between the two (a block dissolves the match; this also
    covers matches imported next to a block). ``total`` counts what is listable.
    """
    queries.get_user(session, user_id)  # 404 for an unknown user
    other = case((Match.user_a == user_id, Match.user_b), else_=Match.user_a)
    blocked = sorted(queries.blocked_between(session, user_id))
    conditions = [or_(Match.user_a == user_id, Match.user_b == user_id),
                  ~queries.hidden_clause("user")]  # fmt: skip
    if blocked:
        conditions.append(other.not_in(blocked))
    listable = (
        select(other.label("other"), Match.created_at, Match.id)
        .join(User, User.id == other)
        .where(*conditions)
        .subquery()
    )
    total = int(session.scalar(select(func.count()).select_from(listable)) or 0)
    rows = session.execute(
        select(listable.c.other, listable.c.created_at)
        .order_by(listable.c.created_at.desc(), listable.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    kinds = match_types(session, user_id, [o for o, _ in rows])
    found = [MatchOut(user_id=o, matched_at=at, match_type=kinds[o]) for o, at in rows]
    after = offset + len(found)
    return MatchesOut(user_id=user_id, total=total, offset=offset, matches=found,
                      next_offset=after if after < total else None)  # fmt: skip


def match_types(session: Session, user_id: str, others: list[str]) -> dict[str, MatchType]:
    """How each match came about: ``mutual_like`` when both liked the other,
    ``superlike`` when both did and one of the likes was a superlike, ``reported`` when
    the app reported the match without both likes recorded here (seed 001's match event)."""
    liked: dict[str, set[str]] = defaultdict(set)  # other -> actions; "me:" marks mine
    if others:
        stmt = select(Interaction.user_id, Interaction.target_user_id, Interaction.action).where(
            Interaction.action.in_(sorted(LIKE_ACTIONS)),
            or_(
                and_(Interaction.user_id == user_id, Interaction.target_user_id.in_(others)),
                and_(Interaction.target_user_id == user_id, Interaction.user_id.in_(others)),
            ),
        )
        for actor, target, action in session.execute(stmt):
            mine = actor == user_id
            liked[str(target if mine else actor)].add(f"{'me' if mine else 'them'}:{action}")
    out: dict[str, MatchType] = {}
    for o in others:
        actions = liked.get(o, set())
        if {a.split(":")[0] for a in actions} != {"me", "them"}:
            out[o] = "reported"
        elif any(a.endswith(f":{Action.SUPERLIKE}") for a in actions):
            out[o] = "superlike"
        else:
            out[o] = "mutual_like"
    return out
