"""Who is calling: the owner of the verified API key, for the audit log.

The key was checked before the body was read (``deps.check_key``); this only names its
owner, so an audit entry says which key acted, never a name the caller wrote in the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from matchwise.db.tables import ApiKey
from matchwise.ops.auth import Principal, hash_key
from matchwise.runtime import Runtime
from matchwise.serve.tiers import on_store

#: The actor when ``auth_enabled`` is off: nobody can be named.
UNAUTHENTICATED = "unauthenticated"
MAX_ACTOR = 200  # AuditLog.actor, ModerationFlag.resolved_by


def presented_key(request: Request) -> str | None:
    """The key as the request presents it (``Authorization: Bearer`` or ``X-API-Key``)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def describe(key_id: str, name: str | None) -> str:
    """``key <id>``, with the key's name when it has one: ids are unique, names need not be."""
    owner = f"key {key_id}"
    return f"{name[: MAX_ACTOR - len(owner) - 3]} ({owner})" if name else owner


def owner_of(session_factory: Callable[[], Any], key: str) -> str:
    """The actor name of ``key``; a credential that is not an API key (none in the table)
    is named by a prefix of its hash, never by the credential itself."""
    digest = hash_key(key)
    with session_factory() as session:
        row = session.execute(
            select(ApiKey.id, ApiKey.name).where(ApiKey.key_hash == digest)
        ).first()
    return describe(row.id, row.name) if row is not None else f"credential {digest[:12]}"


async def key_owner(request: Request) -> str:
    """Dependency: the verified key's owner (one indexed read, on the event loop on SQLite)."""
    runtime: Runtime = request.app.state.runtime
    key = presented_key(request)
    if not runtime.settings.auth_enabled or key is None:
        return UNAUTHENTICATED
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.user_id is not None:  # a user token: no key row
        return f"user {principal.user_id} (token)"[:MAX_ACTOR]
    return await on_store(runtime, owner_of, runtime.read_session, key)


Actor = Annotated[str, Depends(key_owner)]
