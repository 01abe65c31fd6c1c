"""``GET /v1/recommendations``: the hot path. A fresh cached list is read straight from
the caches, without a session where possible; only a miss is computed live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import Query, Request, Response
from starlette.concurrency import run_in_threadpool

from matchwise.api.deps import USER_TOKENS, PrincipalDep, RuntimeDep, act_for, on_store
from matchwise.api.routes.scopes import read_router
from matchwise.runtime import Runtime
from matchwise.schemas import RecommendationsOut
from matchwise.serve import recommend
from matchwise.serve.online import read_list

read = read_router()


@read.get("/v1/recommendations", response_model=RecommendationsOut, openapi_extra=USER_TOKENS)
async def get_recommendations(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    user_id: Annotated[str, Query(min_length=1, max_length=64)],
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    kind: Annotated[Literal["item", "user"] | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=120)] = None,
    city: Annotated[str | None, Query(max_length=120)] = None,
    include_past: bool = False,
    fresh: Annotated[bool, Query(description="skip the ranking cache, compute live")] = False,
) -> Response:
    """Ranked candidates for a user, each with a short reason; says which route served it.

    A fresh cached list is read first: from Redis when configured, else from the
    database without a session (on SQLite on the event loop); anything else is computed
    live in the thread pool. A user token reads only its own user's list.
    """
    act_for(principal, user_id)
    settings = runtime.settings
    filters = recommend.RecommendFilters(category=category, city=city, include_past=include_past)
    # next: the tier choice below (Redis, then the database cache, then live) moves to
    # one service call in serve/ (serve.tiers); this route then only awaits it.
    result: recommend.RecommendationList | None = None
    online = request.app.state.online_reader
    if not fresh and online is not None:
        cache_request = recommend.cacheable(settings, limit, kind, filters)
        if cache_request is not None:
            top_n, list_kind = cache_request
            result = await read_list(online, user_id, list_kind, top_n,
                                     settings.cache_max_age_seconds, datetime.now(UTC))  # fmt: skip
    if not fresh and result is None:
        result = await on_store(runtime, recommend.cached_recommendations, runtime.read_engine,
                                settings, user_id, limit, kind, filters)  # fmt: skip
    if result is None:
        result = await run_in_threadpool(_live, runtime, user_id, limit, kind, filters)
    return Response(_recommendations_json(result), media_type="application/json")


def _live(
    runtime: Runtime,
    user_id: str,
    limit: int | None,
    kind: recommend.Kind | None,
    filters: recommend.RecommendFilters,
) -> recommend.RecommendationList:
    with runtime.read_session() as session:
        return recommend.recommend(runtime, session, user_id, limit=limit, kind=kind,
                                   filters=filters, use_cache=False)  # fmt: skip


def _recommendations_json(result: recommend.RecommendationList) -> bytes:
    """Straight to JSON bytes: the hot path skips a pydantic round trip; the shape is
    RecommendationsOut (the documented response model)."""
    return orjson.dumps(
        {
            "user_id": result.user_id,
            "route": result.route,
            "model_version": result.model_version,
            "generated_at": result.generated_at,
            "recommendations": [r.wire() for r in result.recommendations],
        }
    )
