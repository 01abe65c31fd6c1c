"""The ranking lists in Redis (see :mod:`matchwise.db.online` for the cache itself):
written whole per user and kind by refreshes, read by the API in one round trip with
what must be dropped from them, refilled from the database cache by ``mirror-cache``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from matchwise.db import queries
from matchwise.db.online import OnlineCache, list_key
from matchwise.db.tables import Item
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.errors import ConfigError
from matchwise.serve.types import Kind, Recommendation, RecommendationList


def put_lists(
    cache: OnlineCache, lists: Iterable[RecommendationList], ttl_seconds: int, kind: str
) -> None:
    """Replace each user's list of ``kind``; an empty list removes the key, so the reader
    computes live, as on the database path."""
    cache.put(
        ((list_key(kind, r.user_id), encode(r) if r.recommendations else None) for r in lists),
        ttl_seconds,
    )


def encode(result: RecommendationList) -> bytes:
    """Compact: ids apart (the script checks them), the rest in rank order."""
    recs = result.recommendations
    return orjson.dumps(
        {
            "v": result.model_version,
            "g": result.generated_at.isoformat(),
            "i": [r.candidate_id for r in recs],
            "s": [r.score for r in recs],
            "r": [r.reason for r in recs],
            "t": [r.title for r in recs],
        }
    )


def decode(
    payload: bytes,
    hidden: Iterable[int],
    user_id: str,
    kind: Kind,
    limit: int,
    max_age_seconds: int,
    now: datetime,
) -> RecommendationList | None:
    """The list without hidden candidates, re-ranked from 1; None when it is stale."""
    data = orjson.loads(payload)
    generated = datetime.fromisoformat(data["g"])
    if (now - generated).total_seconds() > max_age_seconds:
        return None
    skip = {int(n) - 1 for n in hidden}
    kept = [n for n in range(len(data["i"])) if n not in skip][:limit]
    return RecommendationList(
        user_id=user_id,
        route="cache",
        model_version=data["v"],
        generated_at=generated,
        recommendations=[
            Recommendation(data["i"][n], kind, data["s"][n], rank, data["r"][n], data["t"][n])
            for rank, n in enumerate(kept, start=1)
        ],
    )


def mirror_database_cache(runtime: Any, batch: int = 1000) -> int:
    """Copy every cached list from the database into Redis: for a Redis that was just
    added, restarted or flushed, without recomputing anything. Returns lists written."""
    cache: OnlineCache | None = runtime.online
    if cache is None:
        raise ConfigError("redis_url is not set: there is no online cache to fill")
    written = 0
    pending: dict[str, list[RecommendationList]] = {"item": [], "user": []}
    current: RecommendationList | None = None
    ttl = runtime.settings.cache_max_age_seconds

    def flush(kind: str) -> None:
        nonlocal written
        put_lists(cache, pending[kind], ttl, kind)
        written += len(pending[kind])
        pending[kind] = []

    with runtime.read_session() as session:
        rows = (row for kind in ("item", "user") for row in session.execute(_mirrored(kind)))
        for user, kind, candidate, score, reason, version, generated, title in rows:
            if current is None or (current.user_id, _kind_of(current)) != (user, kind):
                if len(pending[kind]) >= batch:
                    flush(kind)  # every list in it is complete: rows come grouped by user
                current = RecommendationList(user, "cache", version, generated, [])
                pending[kind].append(current)
            current.recommendations.append(
                Recommendation(
                    candidate,
                    kind,
                    score,
                    len(current.recommendations) + 1,
                    reason or "",
                    title if kind == "item" else None,
                )  # fmt: skip
            )
        for kind in pending:
            flush(kind)
        for kind in ("item", "user"):
            cache.reconcile_hidden(session, kind)
    return written


def _mirrored(kind: str) -> Any:
    """The database cache of ``kind`` without what users decided on since (Redis's seen
    sets may be gone with a flush), grouped by user in rank order."""
    return (
        select(CachedRow.user_id, CachedRow.candidate_kind, CachedRow.candidate_id,
               CachedRow.score, CachedRow.reason, CachedRow.model_version,
               CachedRow.generated_at, Item.title)
        .outerjoin(Item, Item.id == CachedRow.candidate_id)
        .where(CachedRow.candidate_kind == kind,
               queries.not_excluded(kind, CachedRow.user_id, CachedRow.candidate_id))
        .order_by(CachedRow.user_id, CachedRow.rank)
        .execution_options(yield_per=5000)
    )  # fmt: skip


def _kind_of(result: RecommendationList) -> str:
    return result.recommendations[0].candidate_kind if result.recommendations else ""
