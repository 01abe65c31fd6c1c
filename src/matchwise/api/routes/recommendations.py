"""``GET /v1/recommendations``: the hot path. A fresh cached list is read straight from
the caches, without a session where possible; only a miss is computed live."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import Query, Request, Response

from matchwise.api.deps import USER_TOKENS, PrincipalDep, RuntimeDep, act_for
from matchwise.api.routes.scopes import read_router
from matchwise.ops.monitoring import route_counts
from matchwise.schemas import RecommendationsOut
from matchwise.serve.tiers import answer
from matchwise.serve.types import (
    MAX_EXCLUDE,
    MAX_PAGE_END,
    RecommendationList,
    RecommendFilters,
    resolve_page,
)

read = read_router()


@read.get("/v1/recommendations", response_model=RecommendationsOut, openapi_extra=USER_TOKENS)
async def get_recommendations(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    user_id: Annotated[
        str, Query(min_length=1, max_length=64, description="The user the list is for")
    ],
    limit: Annotated[
        int | None,
        Query(ge=1, le=1000, description="How many candidates; default the server's top_n"),
    ] = None,
    kind: Annotated[
        Literal["item", "user"] | None,
        Query(
            description="item: things to join or buy; user: people (dating). Default: the "
            "server's domain"
        ),
    ] = None,
    category: Annotated[
        str | None, Query(max_length=120, description="Only items of this category")
    ] = None,
    city: Annotated[
        str | None, Query(max_length=120, description="Only candidates in this city")
    ] = None,
    include_past: Annotated[
        bool, Query(description="Also items whose start time has passed")
    ] = False,
    fresh: Annotated[bool, Query(description="Skip the ranking cache, compute live")] = False,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_PAGE_END - 1,
            description="Skip this many candidates (paging, "
            f"with limit); offset + limit at most {MAX_PAGE_END}",
        ),
    ] = 0,
    exclude: Annotated[
        list[str] | None,
        Query(
            description="Ids to leave out this time (already on screen, say): repeat the "
            f"parameter or separate ids with commas; at most {MAX_EXCLUDE} ids"
        ),
    ] = None,
    explain: Annotated[
        bool,
        Query(
            description="Add each candidate's explanation: every blend signal's "
            "contribution to its score (on a cached list, computed again now, and "
            "the list says so)"
        ),
    ] = False,
) -> Response:
    """Ranked candidates for a user, each with a short reason; says which route served it.

    A fresh cached list is read first: from Redis when configured, else from the
    database (see ``serve.tiers``); anything else is computed live. A user token reads
    only its own user's list.
    """
    act_for(principal, user_id)
    filters = RecommendFilters(category=category, city=city, include_past=include_past)
    ids = [i.strip() for value in exclude or () for i in value.split(",") if i.strip()]
    page = resolve_page(limit or runtime.settings.default_top_n, offset, ids)
    result = await answer(runtime, request.app.state.online_reader, user_id, limit, kind,
                          filters, fresh=fresh, page=page, explain=explain)  # fmt: skip
    route_counts(runtime).add(result.route)  # monitoring's share of requests per route
    return Response(_recommendations_json(result, explain), media_type="application/json")


def _recommendations_json(result: RecommendationList, explain: bool = False) -> bytes:
    """Straight to JSON bytes: the hot path skips a pydantic round trip; the shape is
    RecommendationsOut (the documented response model)."""
    body = {
        "user_id": result.user_id,
        "route": result.route,
        "model_version": result.model_version,
        "generated_at": result.generated_at,
        "experiment": result.experiment,
        "arm": result.arm,
        "recommendations": [r.wire(explain) for r in result.recommendations],
    }
    if explain:
        body |= {"explained": result.explained, "explained_at": result.explained_at,
                 "explained_by": result.explained_by}  # fmt: skip
    return orjson.dumps(body)
