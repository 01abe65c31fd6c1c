"""SQL for when two people match: never while either blocked the other, and never while
either is held for review or removed by moderation (an approval makes the matches their
mutual likes had earned). Here, below ingest and ops, so both can ask and make them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from matchwise.actions import LIKE_ACTIONS
from matchwise.db.queries import dialect_insert
from matchwise.db.tables import Interaction, Match, User


def held(session: Session, a: str, b: str) -> bool:
    """Whether moderation holds (``hidden``) or removed either person: no match for now.
    A person without a profile row is not held (item-domain users, profiles sent later)."""
    found = select(User.id).where(User.id.in_([a, b]), User.moderation_status != "ok")
    return session.scalar(found.limit(1)) is not None


def _none_held(first: Any, second: Any) -> Any:
    """SQL: neither ``first`` nor ``second`` (user id columns) is held by moderation."""
    u = aliased(User)
    return ~select(u.id).where(u.id.in_([first, second]), u.moderation_status != "ok").exists()


def sync_matches(session: Session, user_id: str | None = None) -> int:
    """Create the match rows implied by mutual likes and reported matches (``match`` rows)
    already stored: after a bulk load, or for ``user_id`` alone when moderation approves
    them.

    Set-based and idempotent: pairs that already have a match are skipped, and so are
    pairs where either blocked the other or either is held by moderation.
    """
    a, b, c = aliased(Interaction), aliased(Interaction), aliased(Interaction)
    likes = sorted(LIKE_ACTIONS)
    later = case((a.occurred_at > b.occurred_at, a.occurred_at), else_=b.occurred_at)
    block = select(c.id).where(
        c.action == "block",
        or_(
            and_(c.user_id == a.user_id, c.target_user_id == a.target_user_id),
            and_(c.user_id == a.target_user_id, c.target_user_id == a.user_id),
        ),
    )
    pairs = (
        select(a.user_id, a.target_user_id, func.max(later))
        .join(b, and_(b.user_id == a.target_user_id, b.target_user_id == a.user_id))
        .where(
            a.action.in_(likes),
            b.action.in_(likes),
            a.user_id < a.target_user_id,
            ~block.exists(),
            _none_held(a.user_id, a.target_user_id),
        )
        .group_by(a.user_id, a.target_user_id)
    )
    if user_id is not None:
        pairs = pairs.where(or_(a.user_id == user_id, a.target_user_id == user_id))
    made = 0
    for source in (pairs, _reported_pairs(user_id)):
        stmt = (
            dialect_insert(session, Match.__table__)
            .from_select(["user_a", "user_b", "created_at"], source)
            .on_conflict_do_nothing(index_elements=["user_a", "user_b"])
            .returning(Match.__table__.c.id)
        )
        made += len(session.execute(stmt).all())
    return made


def _reported_pairs(user_id: str | None) -> Any:
    """SQL: the pairs of ``match`` rows (a match the app reported, as ``POST /v1/events``
    takes it), in (smaller id, larger id) order, unless either blocked the other or is
    held by moderation."""
    m, c = aliased(Interaction), aliased(Interaction)
    first = case((m.user_id < m.target_user_id, m.user_id), else_=m.target_user_id)
    second = case((m.user_id < m.target_user_id, m.target_user_id), else_=m.user_id)
    block = select(c.id).where(
        c.action == "block",
        or_(
            and_(c.user_id == m.user_id, c.target_user_id == m.target_user_id),
            and_(c.user_id == m.target_user_id, c.target_user_id == m.user_id),
        ),
    )
    found = select(first, second, func.max(m.occurred_at)).where(
        m.action == "match",
        m.target_user_id.is_not(None),
        ~block.exists(),
        _none_held(m.user_id, m.target_user_id),
    )
    if user_id is not None:
        found = found.where(or_(m.user_id == user_id, m.target_user_id == user_id))
    return found.group_by(first, second)
