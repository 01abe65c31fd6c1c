"""The dashboard's session: a signed cookie naming the admin key that logged in.

The cookie holds the key's registry id, an expiry and a CSRF nonce, signed with
HMAC-SHA256 under a key derived from the deployment's ``hash_secret`` (never the key
itself). Each request checks the signature, the expiry, and that the key is still an
unrevoked admin key, so revoking a key ends its dashboard sessions too. Forms carry the
nonce (:func:`csrf_ok`), and a POST from another origin is refused whatever it carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from matchwise.db.tables import ApiKey
from matchwise.ops.auth import hash_key

COOKIE = "mw_dashboard"
#: How long a dashboard session lasts before the key must be given again.
SESSION_SECONDS = 8 * 3600
_MAX_COOKIE_CHARS = 1024


@dataclass(frozen=True, slots=True)
class DashboardSession:
    key_id: str  # "" when the deployment runs without keys (auth_enabled: false)
    expires: int
    csrf: str


def _signing_key(secret: str) -> bytes:
    """A key for dashboard sessions alone, so a cookie's signature is never a user
    token's or a keyed hash in an export."""
    return hmac.new(secret.encode(), b"matchwise dashboard session v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(secret: str, body: str) -> str:
    return _b64(hmac.new(_signing_key(secret), body.encode(), hashlib.sha256).digest())


def new_session(key_id: str, seconds: int = SESSION_SECONDS) -> DashboardSession:
    return DashboardSession(key_id, int(time.time()) + seconds, secrets.token_urlsafe(24))


def encode(secret: str, session: DashboardSession) -> str:
    body = _b64(orjson.dumps({"k": session.key_id, "e": session.expires, "c": session.csrf}))
    return f"{body}.{_sign(secret, body)}"


def decode(secret: str, cookie: str | None, now: float | None = None) -> DashboardSession | None:
    """The session a cookie stands for; None when it is missing, forged or expired."""
    if not cookie or len(cookie) > _MAX_COOKIE_CHARS:
        return None
    body, _, signature = cookie.partition(".")
    if not body or not hmac.compare_digest(signature, _sign(secret, body)):
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = DashboardSession(str(claims["k"]), int(claims["e"]), str(claims["c"]))
    except (ValueError, TypeError, KeyError):
        return None
    return session if session.expires > (time.time() if now is None else now) else None


def admin_key(session: Session, key: str) -> ApiKey | None:
    """The unrevoked admin key row for a presented key (None for any other key)."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    return row if row is not None and row.revoked_at is None and row.scope == "admin" else None


def key_row(session: Session, key_id: str) -> ApiKey | None:
    """The session's key, while it is still an unrevoked admin key."""
    row = session.get(ApiKey, key_id)
    return row if row is not None and row.revoked_at is None and row.scope == "admin" else None


def csrf_ok(session: DashboardSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, str(token))
