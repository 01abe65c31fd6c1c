"""``GET /v1/recommendations``: the hot path. A fresh cached list is read straight from
the caches, without a session where possible; only a miss is computed live."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import Query, Request, Response

from matchwise.api.deps import USER_TOKENS, PrincipalDep, RuntimeDep, act_for
from matchwise.api.routes.scopes import read_router
from matchwise.schemas import RecommendationsOut
from matchwise.serve.tiers import answer
from matchwise.serve.types import RecommendationList, RecommendFilters

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
    database (see ``serve.tiers``); anything else is computed live. A user token reads
    only its own user's list.
    """
    act_for(principal, user_id)
    filters = RecommendFilters(category=category, city=city, include_past=include_past)
    result = await answer(runtime, request.app.state.online_reader, user_id, limit, kind,
                          filters, fresh=fresh)  # fmt: skip
    return Response(_recommendations_json(result), media_type="application/json")


def _recommendations_json(result: RecommendationList) -> bytes:
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
