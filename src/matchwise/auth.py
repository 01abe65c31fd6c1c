"""API keys with scopes: ``ingest``, ``read``, ``admin`` (admin implies the others).

Keys are shown once at creation and stored as SHA-256 hashes; a verified key is
remembered in-process for ``ttl`` seconds, so a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from matchwise.audit import audit
from matchwise.db.tables import ApiKey
from matchwise.errors import InvalidInput, NotFound

SCOPES = ("ingest", "read", "admin")
PREFIX = "mw_"
MISS = object()  # KeyCache.cached: not in memory (distinct from a cached "no such key")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def grants(held: str, needed: str) -> bool:
    """Does a key of scope ``held`` allow an action needing ``needed``?"""
    return held == "admin" or held == needed


def create_key(
    session: Session, scope: str, name: str | None = None, actor: str = "cli"
) -> tuple[str, ApiKey]:
    """A new key (returned once, never stored) and its row."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hash_key(key), scope=scope, name=name)
    session.add(row)
    session.flush()
    audit(session, actor, "key.create", row.id, {"scope": scope, "name": name})
    return key, row


def revoke_key(session: Session, ident: str, actor: str = "cli") -> ApiKey:
    """Revoke by id or by the key itself."""
    row = session.scalar(
        select(ApiKey).where(or_(ApiKey.id == ident, ApiKey.key_hash == hash_key(ident)))
    )
    if row is None:
        raise NotFound(f"no API key {ident!r}")
    row.revoked_at = datetime.now(UTC)
    audit(session, actor, "key.revoke", row.id, {"scope": row.scope})
    return row


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


class KeyCache:
    """Scope of recently verified keys, so the hot path does not query per request."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> str | None | object:
        """The remembered scope (None: known bad key), or MISS."""
        with self._lock:
            hit = self._entries.get(hash_key(key))
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return MISS

    def scope_of(self, session_factory: object, key: str) -> str | None:
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with session_factory() as session:  # type: ignore[operator]
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            scope = row.scope if row is not None and row.revoked_at is None else None
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (scope, now + self.ttl)
        return scope

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
