"""``GET /v1/recommendations``: the hot path. A fresh cached list is read straight from
the caches, without a session where possible; only a miss is computed live."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import QueryParams

from matchwise.api.deps import USER_TOKENS, act_for, get_principal
from matchwise.api.routes.scopes import read_router
from matchwise.ops.monitoring import route_counts
from matchwise.runtime import Runtime
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


class RecommendationsQuery(BaseModel):
    """The query parameters of ``GET /v1/recommendations``, validated in one go (FastAPI
    resolving eleven parameters one by one cost the cached path about 9 % of its time);
    the OpenAPI document lists them from this model (:data:`QUERY_PARAMETERS`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=64, description="The user the list is for")
    limit: int | None = Field(
        None, ge=1, le=1000, description="How many candidates; default the server's top_n"
    )
    kind: Literal["item", "user"] | None = Field(
        None,
        description="item: things to join or buy; user: people (dating). Default: the "
        "server's domain",
    )
    category: str | None = Field(None, max_length=120, description="Only items of this category")
    city: str | None = Field(None, max_length=120, description="Only candidates in this city")
    include_past: bool = Field(False, description="Also items whose start time has passed")
    fresh: bool = Field(False, description="Skip the ranking cache, compute live")
    offset: int = Field(
        0,
        ge=0,
        le=MAX_PAGE_END - 1,
        description="Skip this many candidates (paging, with limit); offset + limit at "
        f"most {MAX_PAGE_END}",
    )
    exclude: list[str] | None = Field(
        None,
        description="Ids to leave out this time (already on screen, say): repeat the "
        f"parameter or separate ids with commas; at most {MAX_EXCLUDE} ids",
    )
    explain: bool = Field(
        False,
        description="Add each candidate's explanation: every blend signal's contribution "
        "to its score (on a cached list, computed again now, and the list says so)",
    )


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The model's fields as OpenAPI query parameters (what FastAPI would list)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop["description"]
        if name in required:
            prop.pop("default", None)
        out.append({"name": name, "in": "query", "required": name in required,
                    "description": description, "schema": prop})  # fmt: skip
    return out


QUERY_PARAMETERS = _query_parameters(RecommendationsQuery)
_LISTS = frozenset({"exclude"})


def parse_query(params: QueryParams) -> RecommendationsQuery:
    """The request's parameters, checked as FastAPI would (the last of a repeated scalar
    wins; unknown ones are ignored); a 422 naming each bad one otherwise."""
    given = {k: params.getlist(k) if k in _LISTS else params[k] for k in params}
    try:
        return RecommendationsQuery.model_validate(given)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


@read.get(
    "/v1/recommendations",
    response_model=RecommendationsOut,
    openapi_extra={**USER_TOKENS, "parameters": QUERY_PARAMETERS},
)
async def get_recommendations(request: Request) -> Response:
    """Ranked candidates for a user, each with a short reason; says which route served it.

    A fresh cached list is read first: from Redis when configured, else from the
    database (see ``serve.tiers``); anything else is computed live. A user token reads
    only its own user's list.
    """
    q = parse_query(request.query_params)
    runtime: Runtime = request.app.state.runtime
    act_for(await get_principal(request), q.user_id)
    filters = RecommendFilters(category=q.category, city=q.city, include_past=q.include_past)
    ids = [i.strip() for value in q.exclude or () for i in value.split(",") if i.strip()]
    page = resolve_page(q.limit or runtime.settings.default_top_n, q.offset, ids)
    state = request.app.state
    result = await answer(runtime, state.online_reader, q.user_id, q.limit, q.kind, filters,
                          fresh=q.fresh, page=page, explain=q.explain,
                          store=state.store_reads)  # fmt: skip
    route_counts(runtime).add(result.route)  # monitoring's share of requests per route
    return Response(_recommendations_json(result, q.explain), media_type="application/json")


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
