"""Batch scoring into the per-user ranking cache (seed 004's recompute/refresh).

Each user's list is replaced in one transaction (delete + insert), so a reader sees
either the old list or the new one, never half of either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.db.tables import Recommendation, User
from matchwise.runtime import Runtime
from matchwise.serve.online import put_lists
from matchwise.serve.recommend import recommend
from matchwise.serve.types import Kind, RecommendationList, resolve_request

log = logging.getLogger(__name__)


def write_cache(session: Session, result: RecommendationList, kind: Kind) -> int:
    """Replace ``result.user_id``'s cached list of ``kind`` with ``result`` (inside the
    caller's transaction); a user's list of the other kind is left alone."""
    session.execute(
        delete(Recommendation).where(
            Recommendation.user_id == result.user_id, Recommendation.candidate_kind == kind
        )
    )
    rows = [
        {
            "user_id": result.user_id,
            "candidate_id": r.candidate_id,
            "candidate_kind": r.candidate_kind,
            "score": r.score,
            "rank": r.rank,
            "model_version": result.model_version,
            "route": result.route,
            "reason": r.reason[:300],
            "generated_at": result.generated_at,
        }
        for r in result.recommendations
    ]
    if rows:
        session.execute(insert(Recommendation), rows)
    return len(rows)


def users_to_refresh(runtime: Runtime, user_ids: Sequence[str] | None) -> list[str]:
    """Every active user when None; otherwise ``user_ids``, each checked to exist."""
    with runtime.session() as session:
        if user_ids is None:
            return list(session.scalars(select(User.id).where(User.active.is_(True))))
        for user_id in user_ids:
            queries.get_user(session, user_id)
    return list(user_ids)


def refresh_users(
    runtime: Runtime,
    user_ids: Sequence[str] | None = None,
    top_n: int = 50,
    kind: Kind | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Recompute the cache for ``user_ids`` (all active users when None)."""
    settings = runtime.settings
    full = user_ids is None
    top_n, list_kind = resolve_request(settings, top_n, kind)
    user_ids = users_to_refresh(runtime, user_ids)
    written = 0
    now = datetime.now(UTC)
    pending: list[RecommendationList] = []
    for user_id in user_ids:
        with runtime.session() as session:
            result = recommend(runtime, session, user_id, limit=top_n, kind=list_kind,
                               use_cache=False, now=now, experiments=False)  # fmt: skip
            written += write_cache(session, result, list_kind)
        pending.append(result)
        if len(pending) >= 500:
            _to_online_cache(runtime, pending, list_kind)
            pending = []
        if progress is not None:
            progress()
    _to_online_cache(runtime, pending, list_kind)
    if full:
        reconcile_online_visibility(runtime)
    return {"users": len(user_ids), "rows": written, "generated_at": now.isoformat()}


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
