"""The router (seed 003): the cache when fresh, else cold / warm / hot by the
user's history, items or people; the same function serves the API, the CLI and
refreshes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.runtime import Runtime
from matchwise.serve.cache import read_cache
from matchwise.serve.items import heuristic_items, model_items
from matchwise.serve.people import people_recommendations
from matchwise.serve.state import serving_state
from matchwise.serve.types import (
    Ask,
    Kind,
    RecommendationList,
    RecommendFilters,
    resolve_request,
)
from matchwise.settings import Settings


def recommend(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int | None = None,
    filters: RecommendFilters | None = None,
    kind: Kind | None = None,
    now: datetime | None = None,
    use_cache: bool | None = None,
) -> RecommendationList:
    """Ranked candidates for ``user_id``; raises NotFound for an unknown user.

    Serves the per-user cache when enabled, fresh (younger than
    ``cache_max_age_seconds``) and the request has no filters; computes live otherwise.
    """
    settings, state = runtime.settings, serving_state(runtime)
    limit, kind = resolve_request(settings, limit, kind)
    filters = filters or RecommendFilters()
    now = now or datetime.now(UTC)
    if use_cache is None:
        use_cache = settings.use_cache
    if use_cache and filters == RecommendFilters():
        cached = read_cache(session, user_id, limit, kind, settings.cache_max_age_seconds, now)
        if cached is not None:
            return cached  # cached rows imply the user exists (they cascade with it)
    user = queries.serving_profile(session, user_id)
    history = queries.history_of(session, user_id)
    ask = Ask(session, settings, state, user, history, route_for(history.count(), settings),
              limit, filters, now)  # fmt: skip
    route = ask.route
    if kind == "item" and route != "cold":
        served = model_items(ask)
        if served is not None:
            return served
        route = "fallback"  # no active model for this user: the heuristic answers
    if kind == "user":
        return people_recommendations(replace(ask, route=route))
    recs = heuristic_items(replace(ask, route=route))
    return RecommendationList(
        user_id=user_id,
        route=route,
        model_version=HEURISTIC_VERSION,
        generated_at=now,
        recommendations=recs,
    )


def route_for(n_interactions: int, settings: Settings) -> str:
    """Seed 003's router: cold below ``cold_below``, hot above ``hot_above``, else warm."""
    if n_interactions < settings.router.cold_below:
        return "cold"
    if n_interactions > settings.router.hot_above:
        return "hot"
    return "warm"
