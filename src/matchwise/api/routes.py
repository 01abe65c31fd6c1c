"""Routes: validate, call one function, return. No logic of their own.

Writes go through :meth:`Store.write`, which commits before the route answers; reads
through :meth:`Store.read` or, for cached recommendations, straight to the caches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import case, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import Actor
from matchwise.api.deps import (
    USER_TOKENS,
    AdminScope,
    IngestScope,
    PrincipalDep,
    ReadScope,
    RuntimeDep,
    StoreDep,
    act_for,
    act_for_events,
    check_key,
    guarded,
    on_store,
)
from matchwise.db.queries import get_user
from matchwise.db.tables import Match
from matchwise.ingest.events import record_interaction, store_events
from matchwise.ingest.profiles import store_items, store_users
from matchwise.ops import analytics, moderation, privacy
from matchwise.ops import safety as safety_service
from matchwise.ops.auth import mint_token
from matchwise.runtime import Runtime
from matchwise.schemas import (
    ErasureOut,
    ErrorOut,
    EventBatch,
    FlagOut,
    IngestResult,
    InteractionIn,
    InteractionOut,
    ItemBatch,
    LabelIn,
    MatchesOut,
    MatchOut,
    MetricsOut,
    RecommendationsOut,
    ReportIn,
    ReportOut,
    ResolveIn,
    SafetyIn,
    SafetyOut,
    TokenIn,
    TokenOut,
    UpsertResult,
    UserBatch,
)
from matchwise.serve import recommend
from matchwise.serve import state as serving
from matchwise.serve.online import read_list

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No API key or user token, or an invalid, "
          "revoked or expired one"},
    403: {"model": ErrorOut, "description": "The key's scope does not allow this route, or "
          "a user token acts for another user here; the message says which"},
    404: {"model": ErrorOut, "description": "A user or item named in the request is unknown"},
    422: {"model": ErrorOut, "description": "The request is invalid; the message says where"},
    429: {"model": ErrorOut, "description": "Too many invalid keys or tokens from this "
          "address; retry after the Retry-After header's seconds"},
    503: {"model": ErrorOut, "description": "The store is busy or unreachable; retry after "
          "the Retry-After header's seconds"},
}  # fmt: skip
BODY_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    400: {"model": ErrorOut, "description": "The body is not valid JSON; the message says why"},
    409: {"model": ErrorOut, "description": "The write conflicts with one made at the same "
          "time, or with what is stored"},
    413: {"model": ErrorOut, "description": "The body is over 16 MB, or a batch is over "
          "max_batch_size"},
}  # fmt: skip

router = APIRouter(route_class=guarded(None))
ingest_router = APIRouter(dependencies=[IngestScope], responses=BODY_ERRORS, tags=["ingest"],
                          route_class=guarded("ingest"))  # fmt: skip
read_router = APIRouter(dependencies=[ReadScope], responses=ERRORS, tags=["serve"],
                        route_class=guarded("read"))  # fmt: skip
admin_router = APIRouter(dependencies=[AdminScope], responses=BODY_ERRORS, tags=["admin"],
                         route_class=guarded("admin"))  # fmt: skip


@router.get("/healthz", tags=["ops"])
def healthz(runtime: RuntimeDep) -> serving.HealthOut:
    """Liveness (200 while the process runs), the store's schema revision, and the truth
    about the models: ``degraded`` names active versions that failed to load (retried in
    the background) and what serves instead."""
    return serving.health(runtime)


@ingest_router.post("/v1/users", response_model=UpsertResult)
async def post_users(batch: UserBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of profiles (one transaction); new bios get a safety scan."""
    return await store.write(store_users, store.settings, batch.users)


@ingest_router.post("/v1/items", response_model=UpsertResult)
async def post_items(batch: ItemBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of items (one transaction)."""
    return await store.write(store_items, store.settings, batch.items)


@ingest_router.post("/v1/events", response_model=IngestResult, openapi_extra=USER_TOKENS)
async def post_events(batch: EventBatch, store: StoreDep, principal: PrincipalDep) -> IngestResult:
    """Record a batch of events; retried events (same event_id) are not counted twice. A
    user token may send only its user's events, and no matches."""
    act_for_events(principal, batch.events)
    return await store.write(store_events, store.settings, batch.events)


@ingest_router.post("/v1/interactions", response_model=InteractionOut, openapi_extra=USER_TOKENS)
async def post_interaction(
    interaction: InteractionIn, store: StoreDep, principal: PrincipalDep
) -> InteractionOut:
    """Record one interaction (a click, a like, a registration...); a user token only its
    own user's."""
    act_for_events(principal, [interaction])
    return await store.write(record_interaction, interaction, store.settings)


@read_router.get("/v1/recommendations", response_model=RecommendationsOut,
                 openapi_extra=USER_TOKENS)  # fmt: skip
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


@ingest_router.post("/v1/reports", response_model=ReportOut, openapi_extra=USER_TOKENS)
async def post_report(
    report: ReportIn, store: StoreDep, principal: PrincipalDep, actor: Actor
) -> ReportOut:
    """Record a report; enough distinct reporters hide the profile until reviewed. A user
    token reports only as its own user."""
    act_for(principal, report.reporter_id)
    return await store.write(moderation.report, report, store.settings, actor)


@ingest_router.post("/v1/tokens", response_model=TokenOut, tags=["auth"])
async def post_token(body: TokenIn, runtime: RuntimeDep) -> TokenOut:
    """Mint a short-lived token for one user's app (an ingest or admin key): with it, the
    app reads only that user's recommendations and matches and records only that user's
    swipes and reports. Signed, not stored; it ends at ``expires_at``."""
    minted = mint_token(runtime.settings, body.user_id, body.scope, body.expires_in)
    return TokenOut(token=minted.token, expires_at=minted.expires_at,
                    user_id=minted.user_id, scope=minted.scope)  # fmt: skip


@read_router.get("/v1/users/{user_id}/matches", response_model=MatchesOut,
                 openapi_extra=USER_TOKENS)  # fmt: skip
async def get_matches(
    user_id: Annotated[str, Path(min_length=1, max_length=64)],
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MatchesOut:
    """A user's matches, newest first; a user token reads only its own user's."""
    act_for(principal, user_id)
    return await store.read(_matches, user_id, limit)


def _matches(session: Session, user_id: str, limit: int) -> MatchesOut:
    get_user(session, user_id)  # 404 for an unknown user
    other = case((Match.user_a == user_id, Match.user_b), else_=Match.user_a)
    rows = session.execute(
        select(other, Match.created_at)
        .where((Match.user_a == user_id) | (Match.user_b == user_id))
        .order_by(Match.created_at.desc(), Match.id.desc())
        .limit(limit)
    ).all()
    return MatchesOut(
        user_id=user_id, matches=[MatchOut(user_id=o, matched_at=at) for o, at in rows]
    )


@admin_router.get("/v1/admin/moderation", response_model=list[FlagOut])
async def get_moderation(
    store: StoreDep,
    status: Annotated[Literal["open", "approved", "removed"] | None, Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FlagOut]:
    """Profiles held for review (or already resolved ones)."""
    flags = await store.read(moderation.list_flags, status, limit)
    return [FlagOut(**f) for f in flags]


@admin_router.post("/v1/admin/moderation", response_model=FlagOut)
async def post_moderation(decision: ResolveIn, store: StoreDep, actor: Actor) -> FlagOut:
    """Resolve a flag: approve shows the profile again, remove keeps it hidden. The audit
    log names the API key's owner."""
    return await store.write(moderation.decide, decision, actor)


@admin_router.get("/v1/admin/metrics", response_model=MetricsOut)
async def get_metrics(
    store: StoreDep, days: Annotated[int, Query(ge=1, le=3650)] = 30
) -> MetricsOut:
    """Impressions, clicks, CTR and conversion per day and per model version/route."""
    return MetricsOut(**await store.read(analytics.personalization_metrics, days))


@read_router.post("/v1/safety/classify", response_model=SafetyOut, responses=BODY_ERRORS)
async def post_safety_classify(body: SafetyIn, request: Request, runtime: RuntimeDep) -> SafetyOut:
    """Per-label probabilities and decisions for a text (read scope) and/or a stored
    profile (admin scope: another person's safety signals are not for every reader)."""
    if body.profile_id is not None:
        await check_key(request, "admin")
    result = await run_in_threadpool(safety_service.classify, runtime, body.text,
                                     body.profile_id, body.thresholds)  # fmt: skip
    return SafetyOut(**result)


@admin_router.post("/v1/admin/safety/labels", response_model=dict[str, int])
async def post_safety_label(body: LabelIn, store: StoreDep, actor: Actor) -> dict[str, int]:
    """Store a moderator label; the safety classifier retrains on these."""
    return {"id": await store.write(safety_service.add_label, body.text, body.label,
                                    body.value, actor)}  # fmt: skip


@admin_router.delete("/v1/admin/users/{user_id}", response_model=ErasureOut)
async def delete_user(
    user_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@\-]+$")],
    runtime: RuntimeDep,
    actor: Actor,
) -> ErasureOut:
    """Erase a person: their profile, events, matches, reports, flags and cached lists,
    their id wherever else it is written (audit log, jobs, outbox, Redis) and their bio's
    cached embedding. Trained models forget them at the next retrain. 404 when there is
    nothing (left) to erase."""
    return ErasureOut(**await run_in_threadpool(privacy.erase_user, runtime, user_id, actor))
