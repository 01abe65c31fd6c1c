"""Gorse's REST API (v0.5) under ``/api``: apps built on Gorse's clients switch to
matchwise by changing the URL. Thin routes over :mod:`~matchwise.api.gorse.service`
and :mod:`~matchwise.api.gorse.reads`; Gorse's wire rules are kept here: writes answer
``{"RowAffected": n}``, errors are plain text with Gorse's codes (400 bad input,
401 ``unauthorized``, 404 not found), the key comes in ``X-API-Key``.

Keys: reads (and session recommendations) need a ``read`` key, writes an ``ingest``
key, deleting a user (matchwise erases the person) an ``admin`` key; an admin key does
everything, as Gorse's one key does. User tokens are not Gorse's and are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import key_owner
from matchwise.api.deps import Store, authenticate, parse_json_body
from matchwise.api.gorse import reads, service
from matchwise.api.gorse.models import (
    FeedbackPage,
    GorseFeedback,
    GorseItem,
    GorseItemPatch,
    GorseUser,
    GorseUserPatch,
    ItemPage,
    Score,
    Success,
    UserPage,
)
from matchwise.db.tables import utcnow
from matchwise.errors import MatchwiseError
from matchwise.ops import privacy
from matchwise.runtime import Runtime
from matchwise.serve.state import serving_state

log = logging.getLogger(__name__)

PREFIX = "/api"
#: Gorse's ``server.default_n``.
DEFAULT_N = 10


def _scope(request: Request) -> str | None:
    path = request.url.path
    if path.startswith(f"{PREFIX}/health/"):
        return None
    if request.method == "GET" or path.startswith(f"{PREFIX}/session/recommend"):
        return "read"
    if request.method == "DELETE" and path.startswith(f"{PREFIX}/user/"):
        return "admin"
    return "ingest"


def _status(code: int) -> int:
    """Gorse's codes: bad input is 400, whatever matchwise would call it."""
    return 400 if code == 422 else code


class GorseRoute(APIRoute):
    """Checks the key before the body is read, then answers every failure as Gorse does:
    plain text with the status code."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def gorse_handler(request: Request) -> Response:
            try:
                scope = _scope(request)
                if scope is not None:
                    await _check(request, scope)
                await parse_json_body(request)
                return await handler(request)
            except RequestValidationError as exc:
                err = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                return PlainTextResponse(f"{where}: {err.get('msg', 'invalid')}", 400)
            except HTTPException as exc:
                return PlainTextResponse(str(exc.detail), exc.status_code, exc.headers)
            except MatchwiseError as exc:
                if exc.status_code >= 500:
                    log.error("gorse api: %s: %s", type(exc).__name__, exc)
                return PlainTextResponse(exc.client_message(), _status(exc.status_code))

        return gorse_handler


async def _check(request: Request, scope: str) -> None:
    try:
        principal = await authenticate(request)
    except HTTPException as exc:
        if exc.status_code == 401:
            raise HTTPException(401, "unauthorized") from None
        raise
    if principal.user_id is not None:
        raise HTTPException(401, "unauthorized")
    if not principal.grants(scope):
        raise HTTPException(403, f"this key has scope {principal.scope!r}; this needs {scope!r}")


router = APIRouter(
    prefix=PREFIX,
    route_class=GorseRoute,
    include_in_schema=False,
    default_response_class=JSONResponse,
)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


N = Annotated[int, Query(ge=0, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Categories = Annotated[list[str], Query()]


def ok(count: int) -> Success:
    return Success(RowAffected=count)


# --- health ----------------------------------------------------------------------------


async def _health(request: Request) -> tuple[bool, dict[str, Any]]:
    runtime = _runtime(request)
    try:
        await _store(request).read(lambda s: s.execute(text("SELECT 1")))
        data_error = None
    except MatchwiseError as exc:
        data_error = exc.client_message()
    cache_error = None
    if runtime.online is not None and runtime.online.health.breaker.is_open:
        cache_error = "the online cache (Redis) is unavailable"
    status = {
        "Ready": data_error is None and cache_error is None,
        "DataStoreError": data_error,
        "CacheStoreError": cache_error,
        "DataStoreConnected": data_error is None,
        "CacheStoreConnected": cache_error is None,
    }
    return bool(status["Ready"]), status


@router.get("/health/live")
async def health_live(request: Request) -> dict[str, Any]:
    """Answers while the process runs, with what it can reach."""
    return (await _health(request))[1]


@router.get("/health/ready")
async def health_ready(request: Request) -> Response:
    ready, status = await _health(request)
    return JSONResponse(status) if ready else PlainTextResponse(str(status), 503)


# --- users -----------------------------------------------------------------------------


@router.post("/user")
async def insert_user(request: Request, user: GorseUser) -> Success:
    store = _store(request)
    return ok(await store.write(service.put_users, store.settings, [user]))


@router.post("/users")
async def insert_users(request: Request, users: Annotated[list[GorseUser], Body()]) -> Success:
    store = _store(request)
    return ok(await store.write(service.put_users, store.settings, users))


@router.patch("/user/{user_id}")
async def modify_user(request: Request, user_id: str, patch: GorseUserPatch) -> Success:
    return ok(await _store(request).write(service.patch_user, user_id, patch))


@router.get("/user/{user_id}")
async def get_user(request: Request, user_id: str) -> dict[str, Any]:
    return await _store(request).read(service.get_user, user_id)


@router.get("/users")
async def get_users(request: Request, n: N = DEFAULT_N, cursor: str = "") -> UserPage:
    found, users = await _store(request).read(service.list_users, cursor, n)
    return UserPage(Cursor=found, Users=users)


@router.delete("/user/{user_id}")
async def delete_user(request: Request, user_id: str) -> Success:
    """Erases the person, as ``DELETE /v1/users/{id}`` does (events, matches, caches)."""
    runtime = _runtime(request)
    actor = await key_owner(request)
    await run_in_threadpool(privacy.erase_user, runtime, user_id, actor)
    serving_state(runtime).invalidate()
    return ok(1)


# --- items -----------------------------------------------------------------------------


@router.post("/item")
async def insert_item(request: Request, item: GorseItem) -> Success:
    store = _store(request)
    return ok(await store.write(service.put_items, store.settings, [item]))


@router.post("/items")
async def insert_items(request: Request, items: Annotated[list[GorseItem], Body()]) -> Success:
    store = _store(request)
    return ok(await store.write(service.put_items, store.settings, items))


@router.patch("/item/{item_id}")
async def modify_item(request: Request, item_id: str, patch: GorseItemPatch) -> Success:
    return ok(await _store(request).write(service.patch_item, item_id, patch))


@router.get("/item/{item_id}")
async def get_item(request: Request, item_id: str) -> dict[str, Any]:
    return await _store(request).read(service.get_item, item_id)


@router.get("/items")
async def get_items(request: Request, n: N = DEFAULT_N, cursor: str = "", q: str = "") -> ItemPage:
    """A page of items; ``q`` (Gorse's full-text search) is refused as Gorse refuses it
    when no search columns are configured."""
    if q:
        raise HTTPException(400, "item search (q=) is not supported by matchwise's Gorse API")
    found, items = await _store(request).read(service.list_items, cursor, n)
    return ItemPage(Cursor=found, Items=items)


@router.delete("/item/{item_id}")
async def delete_item(request: Request, item_id: str) -> Success:
    return ok(await _store(request).write(service.delete_item, item_id))


@router.put("/item/{item_id}/category/{category}")
async def insert_item_category(request: Request, item_id: str, category: str) -> Success:
    return ok(await _store(request).write(service.set_category, item_id, category, True))


@router.delete("/item/{item_id}/category/{category}")
async def delete_item_category(request: Request, item_id: str, category: str) -> Success:
    return ok(await _store(request).write(service.set_category, item_id, category, False))


# --- feedback --------------------------------------------------------------------------


@router.post("/feedback")
async def insert_feedback(
    request: Request, feedback: Annotated[list[GorseFeedback], Body()]
) -> Success:
    """Adds: a value sent for a (type, user, item) already stored adds to it."""
    store = _store(request)
    return ok(await store.write(service.put_feedback, store.settings, feedback, False))


@router.put("/feedback")
async def overwrite_feedback(
    request: Request, feedback: Annotated[list[GorseFeedback], Body()]
) -> Success:
    """Overwrites: the value and time sent replace what is stored."""
    store = _store(request)
    return ok(await store.write(service.put_feedback, store.settings, feedback, True))


@router.get("/feedback")
async def get_feedback(request: Request, n: N = DEFAULT_N, cursor: str = "") -> FeedbackPage:
    found, rows = await _store(request).read(service.list_feedback, cursor, n)
    return FeedbackPage(Cursor=found, Feedback=rows)


@router.get("/feedback/{user_id}/{item_id}")
async def get_user_item_feedback(request: Request, user_id: str, item_id: str) -> list[Any]:
    return await _store(request).read(service.user_item_feedback, user_id, item_id)


@router.delete("/feedback/{user_id}/{item_id}")
async def delete_user_item_feedback(request: Request, user_id: str, item_id: str) -> Success:
    return ok(await _store(request).write(service.delete_user_item_feedback, user_id, item_id))


@router.get("/feedback/{feedback_type}")
async def get_typed_feedback(
    request: Request, feedback_type: str, n: N = DEFAULT_N, cursor: str = ""
) -> FeedbackPage:
    found, rows = await _store(request).read(service.list_feedback, cursor, n, feedback_type)
    return FeedbackPage(Cursor=found, Feedback=rows)


@router.get("/feedback/{feedback_type}/{user_id}/{item_id}")
async def get_typed_user_item_feedback(
    request: Request, feedback_type: str, user_id: str, item_id: str
) -> dict[str, Any]:
    return await _store(request).read(
        service.typed_user_item_feedback, feedback_type, user_id, item_id
    )


@router.delete("/feedback/{feedback_type}/{user_id}/{item_id}")
async def delete_typed_user_item_feedback(
    request: Request, feedback_type: str, user_id: str, item_id: str
) -> Success:
    return ok(
        await _store(request).write(
            service.delete_user_item_feedback, user_id, item_id, feedback_type
        )
    )


@router.get("/item/{item_id}/feedback")
@router.get("/item/{item_id}/feedback/")
async def get_item_feedback(request: Request, item_id: str) -> list[Any]:
    return await _store(request).read(service.item_feedback, item_id)


@router.get("/item/{item_id}/feedback/{feedback_type}")
async def get_typed_item_feedback(request: Request, item_id: str, feedback_type: str) -> list[Any]:
    return await _store(request).read(service.item_feedback, item_id, feedback_type)


@router.get("/user/{user_id}/feedback/{feedback_type}")
async def get_typed_user_feedback(request: Request, user_id: str, feedback_type: str) -> list[Any]:
    return await _store(request).read(service.user_feedback, user_id, feedback_type)


@router.get("/user/{user_id}/feedback")
async def get_user_feedback(request: Request, user_id: str) -> list[Any]:
    return await _store(request).read(service.user_feedback, user_id)


# --- recommendations -------------------------------------------------------------------


async def _recommend(
    request: Request,
    user_id: str,
    categories: list[str],
    n: int,
    offset: int,
    write_back_type: str,
    write_back_delay: str,
    api_version: str,
) -> list[Any]:
    runtime = _runtime(request)
    delay = reads.go_duration(write_back_delay)
    scores = await reads.recommend(
        runtime, request.app.state.online_reader, user_id, n, offset, [c for c in categories if c]
    )
    if write_back_type:
        store = _store(request)
        when = service.rfc3339(utcnow() + delay)
        shown = [
            GorseFeedback(
                FeedbackType=write_back_type, UserId=user_id, ItemId=s["Id"], Timestamp=when
            )
            for s in scores
        ]
        await store.write(service.put_feedback, store.settings, shown, False)
    if api_version.strip() == "2":
        return scores
    return [s["Id"] for s in scores]


WriteBackType = Annotated[str, Query(alias="write-back-type")]
WriteBackDelay = Annotated[str, Query(alias="write-back-delay")]
ApiVersion = Annotated[str, Header(alias="X-API-Version")]


@router.get("/recommend/{user_id}")
@router.get("/recommend/{user_id}/")
async def get_recommend(
    request: Request,
    user_id: str,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    category: Categories = [],  # noqa: B006 (FastAPI copies defaults)
    write_back_type: WriteBackType = "",
    write_back_delay: WriteBackDelay = "",
    api_version: ApiVersion = "",
) -> list[Any]:
    """Item ids, or ``[{"Id", "Score"}]`` with ``X-API-Version: 2``."""
    return await _recommend(
        request, user_id, category, n, offset, write_back_type, write_back_delay, api_version
    )


@router.get("/recommend/{user_id}/{category}")
async def get_recommend_in(
    request: Request,
    user_id: str,
    category: Annotated[str, Path()],
    n: N = DEFAULT_N,
    offset: Offset = 0,
    write_back_type: WriteBackType = "",
    write_back_delay: WriteBackDelay = "",
    api_version: ApiVersion = "",
) -> list[Any]:
    return await _recommend(
        request, user_id, [category], n, offset, write_back_type, write_back_delay, api_version
    )


@router.get("/latest")
@router.get("/latest/")
async def get_latest(
    request: Request,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    category: Categories = [],  # noqa: B006
    user_id: Annotated[str, Query(alias="user-id")] = "",
) -> list[Score]:
    rows = await _store(request).read(
        service.latest, n, offset, [c for c in category if c], user_id
    )
    return [Score(**r) for r in rows]


@router.get("/latest/{category}")
async def get_latest_in(
    request: Request,
    category: str,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    user_id: Annotated[str, Query(alias="user-id")] = "",
) -> list[Score]:
    rows = await _store(request).read(service.latest, n, offset, [category], user_id)
    return [Score(**r) for r in rows]


@router.get("/popular")
@router.get("/popular/")
async def get_popular(
    request: Request,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    category: Categories = [],  # noqa: B006
    user_id: Annotated[str, Query(alias="user-id")] = "",
) -> list[Score]:
    store = _store(request)
    rows = await store.read(
        service.popular, store.settings, n, offset, [c for c in category if c], user_id
    )
    return [Score(**r) for r in rows]


@router.get("/popular/{category}")
async def get_popular_in(
    request: Request,
    category: str,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    user_id: Annotated[str, Query(alias="user-id")] = "",
) -> list[Score]:
    store = _store(request)
    rows = await store.read(service.popular, store.settings, n, offset, [category], user_id)
    return [Score(**r) for r in rows]


@router.get("/item/{item_id}/neighbors")
@router.get("/item/{item_id}/neighbors/")
async def get_item_neighbors(
    request: Request,
    item_id: str,
    n: N = DEFAULT_N,
    offset: Offset = 0,
    category: Categories = [],  # noqa: B006
) -> list[Score]:
    rows = await _store(request).read(
        partial(reads.item_neighbors, _runtime(request)),
        item_id,
        n,
        offset,
        [c for c in category if c],
    )
    return [Score(**r) for r in rows]


@router.get("/item/{item_id}/neighbors/{category}")
async def get_item_neighbors_in(
    request: Request, item_id: str, category: str, n: N = DEFAULT_N, offset: Offset = 0
) -> list[Score]:
    rows = await _store(request).read(
        partial(reads.item_neighbors, _runtime(request)), item_id, n, offset, [category]
    )
    return [Score(**r) for r in rows]


@router.get("/user/{user_id}/neighbors")
@router.get("/user/{user_id}/neighbors/")
async def get_user_neighbors(
    request: Request, user_id: str, n: N = DEFAULT_N, offset: Offset = 0
) -> list[Score]:
    rows = await _store(request).read(
        partial(reads.user_neighbors, _runtime(request)), user_id, n, offset
    )
    return [Score(**r) for r in rows]


@router.post("/session/recommend")
@router.post("/session/recommend/{category}")
async def session_recommend(
    request: Request,
    feedback: Annotated[list[GorseFeedback], Body()],
    n: N = DEFAULT_N,
    offset: Offset = 0,
    category: str = "",
) -> list[Score]:
    rows = await _store(request).read(
        partial(reads.session_recommend, _runtime(request)), feedback, n, offset, category
    )
    return [Score(**r) for r in rows]
