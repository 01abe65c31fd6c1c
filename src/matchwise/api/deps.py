"""Dependencies shared by routes: the runtime, a per-request session, scope checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchwise.auth import MISS as _MISS
from matchwise.auth import grants
from matchwise.runtime import Runtime

T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: a sync dependency costs a thread-pool hop per request."""
    return request.app.state.runtime


def get_session(request: Request) -> Iterator[Session]:
    runtime: Runtime = request.app.state.runtime
    with runtime.session() as session:
        yield session


async def on_store(runtime: Runtime, fn: Callable[..., T], *args: Any) -> T:
    """Run a short store read where it costs least.

    A SQLite read is a local file read of tens of microseconds, and in WAL mode it never
    waits for a writer: it runs on the event loop, which saves the thread-pool hop that
    costs more than the read. A networked database is waited on in the thread pool.
    """
    if runtime.engine.dialect.name == "sqlite":
        return fn(*args)
    return await run_in_threadpool(fn, *args)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(scope: str) -> Callable[[Request], Awaitable[str]]:
    """A dependency: 401 without a valid key, 403 when the key's scope is not enough.

    Verified keys are answered from memory; only an unseen key costs a query, run in the
    thread pool so the event loop never blocks on the database.
    """

    async def check(request: Request) -> str:
        runtime: Runtime = request.app.state.runtime
        if not runtime.settings.auth_enabled:
            return "admin"
        key = _presented_key(request)
        if key is None:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        cache = request.app.state.key_cache
        held = cache.cached(key)
        if held is _MISS:
            held = await run_in_threadpool(cache.scope_of, runtime.session, key)
        if held is None:
            raise HTTPException(
                401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if not grants(held, scope):
            raise HTTPException(403, f"this key has scope {held!r}; this route needs {scope!r}")
        return held

    return check


IngestScope = Depends(require("ingest"))
ReadScope = Depends(require("read"))
AdminScope = Depends(require("admin"))
