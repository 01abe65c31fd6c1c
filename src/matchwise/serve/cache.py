"""The per-user ranking cache in the database (seed 004): one query serves a fresh
list without what became hidden, what the user decided on since, or who refused them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, literal, select
from sqlalchemy.orm import Session

from matchwise.db import driver, queries
from matchwise.db.engine import AsyncHeldReads, HeldReads
from matchwise.db.tables import Item, User
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.serve.types import (
    Kind,
    Recommendation,
    RecommendationList,
    RecommendFilters,
    cacheable,
)
from matchwise.settings import Settings


def _cache_query(kind: Kind) -> Any:
    """Built once per kind: the hot path reuses the statement instead of rebuilding it."""
    target = User if kind == "user" else Item
    visible: Any = target.active.is_(True)
    if kind == "user":
        visible = visible & (User.moderation_status == "ok")
    return (
        select(
            CachedRow.candidate_id,
            CachedRow.score,
            CachedRow.reason,
            CachedRow.model_version,
            CachedRow.generated_at,
            Item.title if kind == "item" else literal(None),
        )
        .join(target, target.id == CachedRow.candidate_id)
        .where(
            CachedRow.user_id == bindparam("user_id"),
            CachedRow.candidate_kind == kind,
            visible,
            queries.not_excluded(kind, bindparam("user_id"), CachedRow.candidate_id),
        )
        .order_by(CachedRow.rank)
        .limit(bindparam("limit"))
    )


_CACHE_QUERIES = {"item": _cache_query("item"), "user": _cache_query("user")}


def _cached_list(
    rows: list, user_id: str, kind: Kind, max_age_seconds: int, now: datetime
) -> RecommendationList | None:
    if not rows:
        return None
    generated = driver.as_utc(rows[0][4])
    assert generated is not None
    if (now - generated).total_seconds() > max_age_seconds:
        return None
    return RecommendationList(
        user_id=user_id,
        route="cache",
        model_version=rows[0][3],
        generated_at=generated,
        recommendations=[
            Recommendation(
                candidate_id=candidate,
                candidate_kind=kind,
                score=score,
                rank=rank,
                reason=reason or "",
                title=title,
            )
            for rank, (candidate, score, reason, _, _, title) in enumerate(rows, start=1)
        ],
    )


#: A cached list as kept in a server's memory (``db.copies``): its version, when it was
#: made, and its candidates' ids, scores, reasons and titles, in rank order. Flat tuples
#: of plain values: the garbage collector stops tracking them after a pass or two (one
#: nesting level a pass), so thousands of copies never lengthen its full passes.
Packed = tuple[
    str, datetime, tuple[str, ...], tuple[float, ...], tuple[str, ...], tuple[str | None, ...]
]


def pack(result: RecommendationList) -> Packed:
    recs = result.recommendations
    return (result.model_version, result.generated_at,
            tuple(r.candidate_id for r in recs), tuple(r.score for r in recs),
            tuple(r.reason for r in recs), tuple(r.title for r in recs))  # fmt: skip


def unpack(packed: Packed, user_id: str, kind: Kind) -> RecommendationList:
    """The list :func:`pack` kept, as the database read made it."""
    version, generated, ids, scores, reasons, titles = packed
    return RecommendationList(
        user_id=user_id,
        route="cache",
        model_version=version,
        generated_at=generated,
        recommendations=[
            Recommendation(candidate, kind, score, rank, reason, title)
            for rank, (candidate, score, reason, title) in enumerate(
                zip(ids, scores, reasons, titles, strict=True), start=1
            )
        ],
    )


def read_cache(
    session: Session, user_id: str, limit: int, kind: Kind, max_age_seconds: int, now: datetime
) -> RecommendationList | None:
    """The cached list when it exists and is fresh; None otherwise. One query: candidates
    deactivated or held by moderation since the list was computed, those the user has
    decided on since, and people who refused the user are dropped in SQL."""
    values = {"user_id": user_id, "limit": limit}
    rows = driver.rows(session.connection(), _CACHE_QUERIES[kind], values)
    return _cached_list(rows, user_id, kind, max_age_seconds, now)


def read_cache_from(
    engine: Engine | HeldReads,
    user_id: str,
    limit: int,
    kind: Kind,
    max_age_seconds: int,
    now: datetime | None = None,
) -> RecommendationList | None:
    """:func:`read_cache` on a pooled connection of its own, without a session: what the
    API's cached path runs (on SQLite straight on the event loop, see ``api.routes``)."""
    rows = driver.rows_from(engine, _CACHE_QUERIES[kind], {"user_id": user_id, "limit": limit})
    return _cached_list(rows, user_id, kind, max_age_seconds, now or datetime.now(UTC))


async def read_cache_awaited(
    reads: AsyncHeldReads,
    user_id: str,
    limit: int,
    kind: Kind,
    max_age_seconds: int,
    now: datetime | None = None,
) -> RecommendationList | None:
    """:func:`read_cache_from` awaited on the event loop (PostgreSQL, see ``serve.tiers``)."""
    values = {"user_id": user_id, "limit": limit}
    rows = await driver.rows_awaited(reads, _CACHE_QUERIES[kind], values)
    return _cached_list(rows, user_id, kind, max_age_seconds, now or datetime.now(UTC))


def cached_recommendations(
    engine: Engine,
    settings: Settings,
    user_id: str,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
) -> RecommendationList | None:
    """What :func:`recommend` would serve from the cache, or None when it would compute
    live (cache off, filters given, no fresh list). Needs no session."""
    request = cacheable(settings, limit, kind, filters)
    if request is None:
        return None
    return read_cache_from(engine, user_id, *request, settings.cache_max_age_seconds)
