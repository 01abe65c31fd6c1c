"""Dependencies shared by routes: the runtime, a per-request session, scope checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from matchwise.auth import grants
from matchwise.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_session(request: Request) -> Iterator[Session]:
    with get_runtime(request).session() as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(scope: str) -> Callable[[Request], str]:
    """A dependency: 401 without a valid key, 403 when the key's scope is not enough."""

    def check(request: Request) -> str:
        runtime = get_runtime(request)
        if not runtime.settings.auth_enabled:
            return "admin"
        key = _presented_key(request)
        if key is None:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        held = request.app.state.key_cache.scope_of(runtime.session, key)
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
