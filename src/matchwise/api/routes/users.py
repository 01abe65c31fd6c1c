"""People: profiles written in batches, a person's matches read, a person erased."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any

from fastapi import HTTPException, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import Actor
from matchwise.api.deps import (
    USER_TOKENS,
    PrincipalDep,
    RuntimeDep,
    StoreDep,
    act_for,
    authenticate,
)
from matchwise.api.routes.scopes import admin_router, ingest_router, read_router
from matchwise.ingest.profiles import store_users
from matchwise.ops import privacy
from matchwise.runtime import Runtime
from matchwise.schemas import ErasureOut, MatchesOut, SimilarOut, UpsertResult, UserBatch
from matchwise.serve.matches import matches_of
from matchwise.serve.similar import similar_users
from matchwise.serve.state import serving_state

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


@read.get("/v1/users/{user_id}/similar", response_model=SimilarOut, openapi_extra=USER_TOKENS)
async def get_similar_users(
    user_id: Annotated[str, Path(min_length=1, max_length=64, description="The person to match")],
    runtime: RuntimeDep,
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many people at most")] = 10,
    city: Annotated[
        str | None, Query(max_length=120, description="Only people in this city")
    ] = None,
) -> SimilarOut:
    """People like this person ("more like this"), most alike first: from the active
    model's vectors (a people model: people liked by the same people; an items model:
    people who like the same things), or from co-occurrence when no loaded model knows
    them (the answer's ``source`` says which). Never the person, nor anyone deactivated,
    held, removed or erased; with a user token, never its user nor anyone blocked either
    way with them, and 404 for a person its user may not see."""
    return await store.read(partial(similar_users, runtime), user_id, limit, principal.user_id,
                            city)  # fmt: skip


UserPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@\-]+$", description="Who to erase"),
]


class ErasureRoute(APIRoute):
    """The guard of ``DELETE /v1/users/{user_id}``: an admin key, or a user token acting
    for the person in the path (erasing oneself; scope ``user`` or ``ingest``, not a
    read-only one). Checked before anything else runs, like every guarded route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded_handler(request: Request) -> Response:
            principal = await authenticate(request)
            if principal.user_id is None and not principal.grants("admin"):
                raise HTTPException(403, f"this key has scope {principal.scope!r}; this route "
                                    "needs 'admin', or the person's own user token")  # fmt: skip
            if principal.user_id is not None:
                act_for(principal, request.path_params.get("user_id", ""))
                if not principal.grants("ingest"):
                    raise HTTPException(403, f"this token has scope {principal.scope!r}; "
                                        "erasing oneself needs a 'user' token")  # fmt: skip
            request.state.principal = principal
            return await handler(request)

        return guarded_handler


async def delete_user(user_id: UserPath, runtime: RuntimeDep, actor: Actor) -> ErasureOut:
    """Erase a person (GDPR art. 17), with an admin key or the person's own user token
    (erasing oneself): their profile, events, swipes, matches (both sides), reports and
    flags about them, cached lists (theirs, and them in everyone else's, in the database
    and Redis), their bio's vectors; their events stay only as daily counts without the
    id, and one audit entry names a keyed hash. They are never shown again on any route.
    Trained models forget them at the next retrain. Not idempotent in its answer: a
    second delete is 404 ("already erased") and changes nothing."""
    return await _erase(runtime, user_id, actor)


admin.add_api_route("/v1/users/{user_id}", delete_user, methods=["DELETE"],
                    response_model=ErasureOut, openapi_extra=USER_TOKENS,
                    route_class_override=ErasureRoute)  # fmt: skip


@admin.delete("/v1/admin/users/{user_id}", response_model=ErasureOut)
async def delete_user_as_admin(user_id: UserPath, runtime: RuntimeDep, actor: Actor) -> ErasureOut:
    """Erase a person: what ``DELETE /v1/users/{user_id}`` does with an admin key (kept for
    operators' scripts). 404 when there is nothing (left) to erase."""
    return await _erase(runtime, user_id, actor)


async def _erase(runtime: Runtime, user_id: str, actor: str) -> ErasureOut:
    """Erase, then drop what this process loaded about people (catalogues with their bio
    vectors), so nothing of the person stays in memory here; other processes hide them
    at once (serving checks every list against the store) and drop them at their next
    catalogue reload."""
    out = await run_in_threadpool(privacy.erase_user, runtime, user_id, actor)
    serving_state(runtime).invalidate()
    return ErasureOut(**out)
