"""People: profiles written in batches, a person's matches read, a person erased."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from sqlalchemy import case, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import Actor
from matchwise.api.deps import USER_TOKENS, PrincipalDep, RuntimeDep, StoreDep, act_for
from matchwise.api.routes.scopes import admin_router, ingest_router, read_router
from matchwise.db.queries import get_user
from matchwise.db.tables import Match
from matchwise.ingest.profiles import store_users
from matchwise.ops import privacy
from matchwise.schemas import ErasureOut, MatchesOut, MatchOut, UpsertResult, UserBatch

ingest = ingest_router()
read = read_router()
admin = admin_router()


@ingest.post("/v1/users", response_model=UpsertResult)
async def post_users(batch: UserBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of profiles (one transaction); new bios get a safety scan."""
    return await store.write(store_users, store.settings, batch.users)


@read.get("/v1/users/{user_id}/matches", response_model=MatchesOut, openapi_extra=USER_TOKENS)
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


@admin.delete("/v1/admin/users/{user_id}", response_model=ErasureOut)
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
