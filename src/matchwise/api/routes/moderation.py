"""Abuse: people report profiles (enough reporters hide one), operators review the
flags and decide."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from matchwise.api.actor import Actor
from matchwise.api.deps import USER_TOKENS, PrincipalDep, StoreDep, act_for
from matchwise.api.routes.scopes import admin_router, ingest_router
from matchwise.ops import moderation
from matchwise.schemas import FlagOut, ReportIn, ReportOut, ResolveIn

ingest = ingest_router()
admin = admin_router()


@ingest.post("/v1/reports", response_model=ReportOut, openapi_extra=USER_TOKENS)
async def post_report(
    report: ReportIn, store: StoreDep, principal: PrincipalDep, actor: Actor
) -> ReportOut:
    """Record a report; enough distinct reporters hide the profile until reviewed. A user
    token reports only as its own user."""
    act_for(principal, report.reporter_id)
    return await store.write(moderation.report, report, store.settings, actor)


@admin.get("/v1/admin/moderation", response_model=list[FlagOut])
async def get_moderation(
    store: StoreDep,
    status: Annotated[
        Literal["open", "approved", "removed"] | None,
        Query(description="open: waiting for a decision; approved or removed: resolved"),
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many flags")] = 100,
) -> list[FlagOut]:
    """Profiles held for review (or already resolved ones)."""
    flags = await store.read(moderation.list_flags, status, limit)
    return [FlagOut(**f) for f in flags]


@admin.post("/v1/admin/moderation", response_model=FlagOut)
async def post_moderation(decision: ResolveIn, store: StoreDep, actor: Actor) -> FlagOut:
    """Resolve a flag: approve shows the profile again, remove keeps it hidden. The audit
    log names the API key's owner."""
    return await store.write(moderation.decide, decision, actor)
