"""Redis as the shared online cache, for deployments beyond one machine.

The database's ranking cache stays the source of truth; with ``redis_url`` set, every
refreshed list is also written to Redis (one key per user and kind, replaced whole, so a
reader never sees half a list) and the API reads Redis first: every API process on
every machine answers from the same in-memory copy without touching the database.

Candidates hidden after a list was written (item deactivated, profile held by
moderation) must disappear at once, as they do on the database path. Every change of
visibility made through matchwise is noted on the session and, after its commit, the
changed ids are re-read from the database and added to or removed from a per-kind
"hidden" set; a Lua script returns a list together with which of its candidates are in
that set, in one round trip. A full refresh reconciles the set with the database, so a
change made behind matchwise's back is corrected on the next refresh.

Redis being down never fails a request: reads fall back to the database cache.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.db.tables import Item, User
from matchwise.errors import ConfigError
from matchwise.recommend import Kind, Recommendation, RecommendationList

log = logging.getLogger(__name__)

PREFIX = "matchwise:"
_NOTED = "matchwise_visibility"

#: KEYS[1] the list, KEYS[2] the hidden set; returns {payload, positions hidden (1-based)}.
READ_SCRIPT = """
local payload = redis.call('GET', KEYS[1])
if not payload then return false end
local ids = cjson.decode(payload)['i']
local hidden = {}
for n = 1, #ids do
  if redis.call('SISMEMBER', KEYS[2], ids[n]) == 1 then hidden[#hidden + 1] = n end
end
return {payload, hidden}
"""


def list_key(kind: str, user_id: str) -> str:
    return f"{PREFIX}rec:{kind}:{user_id}"


def hidden_key(kind: str) -> str:
    return f"{PREFIX}hidden:{kind}"


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


class OnlineCache:
    """Writes (refresh, visibility changes) with a blocking client; the API reads with
    :class:`AsyncReader` on its own event loop."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    def put(self, lists: Iterable[RecommendationList], ttl_seconds: int, kind: str) -> None:
        """Replace each user's list (one SET per user: atomic for its readers); an empty
        list removes the key, so the reader computes live, as on the database path."""
        pipe = self.client.pipeline(transaction=False)
        for result in lists:
            key = list_key(kind, result.user_id)
            if result.recommendations:
                pipe.set(key, encode(result), ex=max(ttl_seconds, 1))
            else:
                pipe.delete(key)
        pipe.execute()

    def set_visibility(self, kind: str, hidden: Iterable[str], shown: Iterable[str]) -> None:
        hidden, shown = list(hidden), list(shown)
        pipe = self.client.pipeline(transaction=True)
        if hidden:
            pipe.sadd(hidden_key(kind), *hidden)
        if shown:
            pipe.srem(hidden_key(kind), *shown)
        pipe.execute()

    def reconcile_hidden(self, session: Session, kind: str) -> int:
        """Make the hidden set match the database: everything not shown is hidden, ids
        that are shown again leave the set (ids gone from the store stay hidden)."""
        members = sorted(self.hidden(kind))
        hidden = _hidden_ids(session, kind)
        shown = set(members) - hidden - _missing(session, kind, members)
        self.set_visibility(kind, hidden, shown)
        return len(hidden)

    def hidden(self, kind: str) -> set[str]:
        members: Any = self.client.smembers(hidden_key(kind))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    def close(self) -> None:
        self.client.close()


class AsyncReader:
    """The API's read side: one round trip per request, no thread-pool hop."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=1,
                                                   socket_connect_timeout=1)  # fmt: skip
        self.script = self.client.register_script(READ_SCRIPT)
        self._failures = 0

    async def get(
        self, user_id: str, kind: Kind, limit: int, max_age_seconds: int, now: datetime
    ) -> RecommendationList | None:
        """The user's list, or None (missing, stale, or Redis unreachable)."""
        import redis

        try:
            found = await self.script(keys=[list_key(kind, user_id), hidden_key(kind)])
        except (redis.RedisError, OSError) as exc:
            self._failures += 1
            if self._failures == 1 or self._failures % 1000 == 0:
                log.warning("online cache unreachable (%s); reading the database cache", exc)
            return None
        self._failures = 0
        if not found:
            return None
        payload, hidden = found
        return decode(payload, hidden, user_id, kind, limit, max_age_seconds, now)

    async def close(self) -> None:
        await self.client.aclose()


def mirror_database_cache(runtime: Any, batch: int = 1000) -> int:
    """Copy every cached list from the database into Redis: for a Redis that was just
    added, restarted or flushed, without recomputing anything. Returns lists written."""
    from matchwise.db.tables import Recommendation as CachedRow

    cache: OnlineCache | None = runtime.online
    if cache is None:
        raise ConfigError("redis_url is not set: there is no online cache to fill")
    stmt = (
        select(CachedRow.user_id, CachedRow.candidate_kind, CachedRow.candidate_id,
               CachedRow.score, CachedRow.reason, CachedRow.model_version,
               CachedRow.generated_at, Item.title)
        .outerjoin(Item, Item.id == CachedRow.candidate_id)
        .order_by(CachedRow.user_id, CachedRow.candidate_kind, CachedRow.rank)
    )  # fmt: skip
    written = 0
    pending: dict[str, list[RecommendationList]] = {"item": [], "user": []}
    current: RecommendationList | None = None
    ttl = runtime.settings.cache_max_age_seconds

    def flush(kind: str) -> None:
        nonlocal written
        cache.put(pending[kind], ttl, kind)
        written += len(pending[kind])
        pending[kind] = []

    with runtime.session() as session:
        for user, kind, candidate, score, reason, version, generated, title in session.execute(
            stmt
        ).yield_per(5000):
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


def _kind_of(result: RecommendationList) -> str:
    return result.recommendations[0].candidate_kind if result.recommendations else ""


# --- visibility changes -------------------------------------------------------------

_CACHES: weakref.WeakKeyDictionary[Engine, OnlineCache] = weakref.WeakKeyDictionary()


def attach(engine: Engine, cache: OnlineCache) -> None:
    """Sessions on ``engine`` push their noted visibility changes to ``cache``."""
    _CACHES[engine] = cache


def note_visibility(session: Session, kind: str, ids: Iterable[str]) -> None:
    """Record that ``ids`` may have been shown or hidden; pushed after the commit."""
    session.info.setdefault(_NOTED, set()).update((kind, i) for i in ids)


@event.listens_for(Session, "after_commit")
def _push_visibility(session: Session) -> None:
    noted = session.info.pop(_NOTED, None)
    if not noted:
        return
    bind = session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    cache = _CACHES.get(engine)  # type: ignore[arg-type]
    if cache is None:
        return
    try:
        with Session(bind=engine) as fresh:  # the committed state, not the session's
            for kind in ("item", "user"):
                ids = sorted(i for k, i in noted if k == kind)
                if ids:
                    shown = _shown_among(fresh, kind, ids)
                    cache.set_visibility(kind, set(ids) - shown, shown)
    except Exception as exc:  # the next full refresh reconciles the set
        log.error("could not update the online cache's hidden set (%s)", exc)


@event.listens_for(Session, "after_rollback")
def _forget_visibility(session: Session) -> None:
    session.info.pop(_NOTED, None)


def _id_column(kind: str) -> Any:
    return User.id if kind == "user" else Item.id


def _shown_among(session: Session, kind: str, ids: list[str]) -> set[str]:
    """Those of ``ids`` that exist and may be shown (gone ones count as hidden)."""
    from matchwise.ingest import existing_ids

    present = existing_ids(session, _id_column(kind), ids)
    return present - queries.hidden_candidates(session, sorted(present), kind)


def _hidden_ids(session: Session, kind: str) -> set[str]:
    return set(session.scalars(select(_id_column(kind)).where(queries.hidden_clause(kind))))


def _missing(session: Session, kind: str, ids: list[str]) -> set[str]:
    from matchwise.ingest import existing_ids

    return set(ids) - existing_ids(session, _id_column(kind), ids)
