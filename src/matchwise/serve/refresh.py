"""Batch scoring into the per-user ranking cache (seed 004's recompute/refresh).

Users are refreshed a block at a time: the block's profiles and histories are read in two
queries, the block's item lists are computed together as a live request would compute
each (:func:`~matchwise.serve.item_blocks.item_lists`: one batched index search, masks and
array operations; people lists per user by
:func:`~matchwise.serve.recommend.compute_for`), and the block's lists replace the old
ones in one transaction (one delete, then COPY on PostgreSQL or one executemany on
SQLite), so a reader sees either the old list or the new one, never half of either.
At a million users the per-user round trips and row-by-row inserts were most of the time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import any_, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from matchwise.db import driver, queries
from matchwise.db.notify import lists_changed
from matchwise.db.tables import Interaction, Recommendation, User
from matchwise.errors import NotFound
from matchwise.runtime import Runtime
from matchwise.serve.item_blocks import item_lists
from matchwise.serve.online import put_lists
from matchwise.serve.recommend import compute_for
from matchwise.serve.types import Kind, RecommendationList, RecommendFilters, resolve_request

log = logging.getLogger(__name__)

#: Users per block: one transaction, two reads and one bulk write each.
BLOCK = 1000
#: The cache's columns in the order a bulk write supplies them.
CACHE_COLUMNS = ["user_id", "candidate_id", "candidate_kind", "score", "rank", "model_version",
                 "route", "reason", "generated_at"]  # fmt: skip


def cache_rows(result: RecommendationList) -> list[tuple[Any, ...]]:
    """``result`` as cache rows (:data:`CACHE_COLUMNS`), times as naive UTC."""
    generated = result.generated_at.astimezone(UTC).replace(tzinfo=None)
    return [
        (result.user_id, r.candidate_id, r.candidate_kind, r.score, r.rank,
         result.model_version, result.route, r.reason[:300], generated)
        for r in result.recommendations
    ]  # fmt: skip


#: COPY's text format escapes: a backslash, and the tab, newline and carriage return
#: that would end a field or a row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
#: The columns :func:`copy_text` writes: a list's own first (the same on each of its rows,
#: formatted once a list), then each row's.
COPY_COLUMNS = ["user_id", "model_version", "route", "generated_at", "candidate_id",
                "candidate_kind", "score", "rank", "reason"]  # fmt: skip


def copy_text(results: Sequence[RecommendationList]) -> str:
    """``results``' cache rows in COPY's text format (:data:`COPY_COLUMNS`), what a list's
    rows share formatted once, a reason said again escaped once: formatting each row's
    every field was a third of a people list's refresh write."""
    lines = []
    said: dict[str, str] = {}  # reasons and kinds, escaped
    ids = "".join(r.candidate_id for result in results for r in result.recommendations)
    plain = _COPY_SPECIAL.search(ids) is None  # then no id needs escaping: one check
    for result in results:
        generated = result.generated_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        head = (f"{result.user_id.translate(_COPY_ESCAPES)}\t"
                f"{result.model_version.translate(_COPY_ESCAPES)}\t"
                f"{result.route.translate(_COPY_ESCAPES)}\t{generated}\t")  # fmt: skip
        for r in result.recommendations:
            reason = said.get(r.reason)
            if reason is None:
                reason = said[r.reason] = r.reason[:300].translate(_COPY_ESCAPES)
            kind = said.get(r.candidate_kind)
            if kind is None:
                kind = said[r.candidate_kind] = r.candidate_kind.translate(_COPY_ESCAPES)
            candidate = r.candidate_id if plain else r.candidate_id.translate(_COPY_ESCAPES)
            lines.append(f"{head}{candidate}\t{kind}\t{float(r.score)!r}\t{int(r.rank)}\t"
                         f"{reason}\n")  # fmt: skip
    return "".join(lines)


def write_caches(session: Session, results: Sequence[RecommendationList], kind: Kind) -> int:
    """Replace each of ``results``' users' cached list of ``kind`` (inside the caller's
    transaction): one delete for all of them, then COPY (PostgreSQL) or one executemany
    (SQLite); a user's list of the other kind is left alone. Returns rows written."""
    users = [r.user_id for r in results]
    lists_changed(session, users=users)  # every server's copies of them (a notice)
    for among in _among(session, Recommendation.user_id, users):
        session.execute(delete(Recommendation).where(Recommendation.candidate_kind == kind, among)
                        .execution_options(synchronize_session=False))  # fmt: skip
    written = sum(len(result.recommendations) for result in results)
    if not written:
        return 0
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None  # a live connection inside the session's transaction
        copy_sql = f"COPY recommendations ({', '.join(COPY_COLUMNS)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write(copy_text(results))
    else:
        rows = [row for result in results for row in cache_rows(result)]
        session.execute(insert(Recommendation), [dict(zip(CACHE_COLUMNS, row, strict=True))
                                                 for row in rows])  # fmt: skip
    return written


def users_to_refresh(runtime: Runtime, user_ids: Sequence[str] | None) -> list[str]:
    """Every active user when None; otherwise ``user_ids``, each checked to exist."""
    with runtime.session() as session:
        if user_ids is None:
            return list(session.scalars(select(User.id).where(User.active.is_(True))))
        found: set[str] = set()
        for among in _among(session, User.id, list(user_ids)):
            found.update(session.scalars(select(User.id).where(among)))
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise NotFound(f"unknown user {missing[0]!r}")
    return list(user_ids)


_PROFILES = select(User.id, User.tags, User.city)
_HISTORIES = select(Interaction.user_id, Interaction.item_id, Interaction.target_user_id,
                    Interaction.action, Interaction.value)  # fmt: skip


def _among(session: Session, column: Any, ids: Sequence[str]) -> list[Any]:
    """Conditions that together say ``column`` is one of ``ids``: one ``= ANY(array)`` on
    PostgreSQL, an ``IN`` per :data:`queries.CHUNK` ids on SQLite (its limit of bound
    variables)."""
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(column.type)))]
    return [column.in_(list(part)) for part in queries.chunked(ids)]


def profiles_and_histories(
    session: Session, user_ids: Sequence[str]
) -> dict[str, tuple[queries.Profile, queries.History]]:
    """What :func:`~matchwise.serve.recommend.compute` reads per user, for a block of
    users in two queries: each history oldest first, as ``queries.history_of`` orders it.
    A user no longer stored is absent."""
    out: dict[str, tuple[queries.Profile, queries.History]] = {}
    for among in _among(session, User.id, user_ids):
        for user, tags, city in session.execute(_PROFILES.where(among)):
            out[user] = (queries.Profile(user, list(driver.as_json(tags) or []), city),
                         queries.History([], [], [], []))  # fmt: skip
    order = (Interaction.user_id, Interaction.occurred_at, Interaction.id)
    for among in _among(session, Interaction.user_id, user_ids):
        for user, item, target, action, value in session.execute(
            _HISTORIES.where(among).order_by(*order)
        ):
            found = out.get(user)
            if found is not None:
                history = found[1]
                history.item_ids.append(item)
                history.target_user_ids.append(target)
                history.actions.append(action)
                history.values.append(value)
    return out


def refresh_block(
    runtime: Runtime, user_ids: Sequence[str], top_n: int, kind: Kind, now: datetime
) -> tuple[list[RecommendationList], int]:
    """Recompute and replace ``user_ids``' lists in one transaction; returns the lists and
    the rows written. A user erased since the refresh began is skipped."""
    filters = RecommendFilters()
    with runtime.session() as session:
        read = profiles_and_histories(session, user_ids)
        for user_id in user_ids:
            if user_id not in read:
                log.info("user %s is gone: not refreshed", user_id)
        if kind == "item":  # the block at once (serve.item_blocks), the same lists
            results = item_lists(runtime, session, read, user_ids, top_n, now)
        else:
            results = [compute_for(runtime, session, *read[u], top_n, kind, filters, now)
                       for u in user_ids if u in read]  # fmt: skip
        written = write_caches(session, results, kind)
    return results, written


def refresh_users(
    runtime: Runtime,
    user_ids: Sequence[str] | None = None,
    top_n: int = 50,
    kind: Kind | None = None,
    progress: Any = None,
    block: int = BLOCK,
) -> dict[str, Any]:
    """Recompute the cache for ``user_ids`` (all active users when None), ``block`` users
    a transaction; ``progress()`` is called once per user refreshed."""
    settings = runtime.settings
    full = user_ids is None
    top_n, list_kind = resolve_request(settings, top_n, kind)
    user_ids = users_to_refresh(runtime, user_ids)
    written = refreshed = 0
    now = datetime.now(UTC)
    for start in range(0, len(user_ids), block):
        results, rows = refresh_block(runtime, user_ids[start : start + block], top_n,
                                      list_kind, now)  # fmt: skip
        written += rows
        refreshed += len(results)
        _to_online_cache(runtime, results, list_kind)
        if progress is not None:
            for _ in results:
                progress()
    if full:
        reconcile_online_visibility(runtime)
    return {"users": refreshed, "rows": written, "generated_at": now.isoformat()}


def reconcile_online_visibility(runtime: Runtime) -> None:
    """After a full refresh: make Redis's hidden sets match the store (no-op without
    Redis; a failure is logged, the next full refresh tries again)."""
    if runtime.online is None:
        return
    try:
        with runtime.session() as session:
            for kind in ("item", "user"):
                runtime.online.reconcile_hidden(session, kind)
    except Exception as exc:
        log.error("could not reconcile the online cache's hidden sets (%s)", exc)


def _to_online_cache(runtime: Runtime, lists: list[RecommendationList], kind: str) -> None:
    """Mirror freshly written lists into Redis. The database already holds them, so a
    Redis failure is logged, not raised: readers fall back to the database cache."""
    if runtime.online is None or not lists:
        return
    try:
        put_lists(runtime.online, lists, runtime.settings.cache_max_age_seconds, kind)
    except Exception as exc:
        log.error("could not write %d lists to the online cache (%s)", len(lists), exc)
