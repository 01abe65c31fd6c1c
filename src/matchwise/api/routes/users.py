"""People: profiles written in batches, a person's matches read, a person erased."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import Actor
from matchwise.api.deps import USER_TOKENS, PrincipalDep, RuntimeDep, StoreDep, act_for
from matchwise.api.routes.scopes import admin_router, ingest_router, read_router
from matchwise.ingest.profiles import store_users
from matchwise.ops import privacy
from matchwise.schemas import ErasureOut, MatchesOut, UpsertResult, UserBatch
from matchwise.serve.matches import matches_of

ingest = ingest_router()
read = read_router()
admin = admin_router()


@ingest.post("/v1/users", response_model=UpsertResult)
async def post_users(batch: UserBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of profiles (one transaction); new bios get a safety scan."""
    return await store.write(store_users, store.settings, batch.users)


@read.get("/v1/users/{user_id}/matches", response_model=MatchesOut, openapi_extra=USER_TOKENS)
async def get_matches(
    user_id: Annotated[str, Path(min_length=1, max_length=64, description="Whose matches")],
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Matches per page")] = 100,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Matches to skip: a previous page's next_offset")
    ] = 0,
) -> MatchesOut:
    """A user's matches, newest first, a page at a time: the other person, when, and how
    the match came about. People not shown now and anyone blocked are never listed; a
    user token reads only its own user's."""
    act_for(principal, user_id)
    return await store.read(matches_of, user_id, limit, offset)


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
