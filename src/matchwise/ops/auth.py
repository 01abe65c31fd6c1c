"""Who may call: API keys with scopes (``ingest``, ``read``, ``admin``; admin implies the
others) held by the operator's servers, and short-lived user tokens that act for one user.

Keys are shown once at creation and stored as SHA-256 hashes. A verified key is trusted
from memory for :data:`KEY_RECHECK_SECONDS`. The server re-reads every live key in the
background twice as often (:meth:`KeyCache.refresh`, one query), so a request finds its
key's verdict fresh in memory even as the first after a start or an idle spell; when
that re-read is late (the store is slow or away), a lapsed verdict is checked again by
one request at a time (the others keep the verdict that lapsed moments ago, for at most
:data:`KEY_STALE_SECONDS`). Either way a revocation takes effect within a second plus
one query's time in every process. User tokens are signed (HMAC-SHA256 under a key
derived from ``hash_secret``) and carry their user, scope and expiry: checking one needs
no query. Failed checks are rate-limited per client address (:class:`FailureLimiter`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from matchwise.db.audit import audit
from matchwise.db.tables import ApiKey
from matchwise.errors import InvalidInput, NotFound
from matchwise.settings import Settings

SCOPES = ("ingest", "read", "admin")
PREFIX = "mw_"
MISS = object()  # KeyCache.cached: not in memory (distinct from a cached "no such key")
#: How long a key's verdict is trusted from memory before it is checked in the store again.
KEY_RECHECK_SECONDS = 1.0
#: While one request re-checks a valid key whose verdict lapsed, the other requests with
#: that key keep the lapsed verdict, for at most this long after the re-check began (a
#: re-check slower than that: each request checks for itself, as without a re-check).
#: So a revocation acts within KEY_RECHECK_SECONDS plus one re-check's time, at most
#: KEY_RECHECK_SECONDS + KEY_STALE_SECONDS.
KEY_STALE_SECONDS = 5.0
#: Unknown keys remembered at most (the oldest go first); valid keys are kept apart.
MAX_REMEMBERED_MISSES = 10_000
#: Live keys the background re-read holds at most: past that many (keys are for the
#: operator's servers; people act through user tokens) it stops, and each key's verdict
#: is re-checked by its own requests as it lapses.
MAX_REFRESHED_KEYS = 1_000

TOKEN_PREFIX = "mwt_"
#: What each user-token scope allows, always for the token's own user only.
TOKEN_SCOPES: dict[str, tuple[str, ...]] = {
    "user": ("read", "ingest"),  # a user's app: read their lists, record their swipes
    "read": ("read",),
    "ingest": ("ingest",),
}
_MAX_TOKEN_CHARS = 512


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def grants(held: str, needed: str) -> bool:
    """Does a key of scope ``held`` allow an action needing ``needed``?"""
    return held == "admin" or held == needed


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: an API key (for any user), or a user token (``user_id``
    set: for that user only)."""

    scope: str
    user_id: str | None = None

    @property
    def kind(self) -> str:
        return "key" if self.user_id is None else "token"

    def grants(self, needed: str) -> bool:
        if self.user_id is None:
            return grants(self.scope, needed)
        return needed in TOKEN_SCOPES.get(self.scope, ())

    def may_act_for(self, user_id: str) -> bool:
        """A key acts for anyone; a user token only for its own user."""
        return self.user_id is None or self.user_id == user_id


#: The caller when authentication is turned off (``auth_enabled: false``).
ANYONE = Principal("admin")


class BadCredential(Exception):
    """A key or token that does not authenticate; the message says why, for the caller."""


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
    """Verdicts on recently presented keys, so the hot path does not query per request.

    Valid keys and unknown ones ("misses") are kept apart: misses are bounded on their
    own, oldest dropped first, so a flood of random keys can never push a valid key out.
    Every verdict is trusted for ``ttl`` seconds, then checked again. A valid key stays
    *known* after that (until it is found revoked): the rate limiter lets a known key be
    checked again while it refuses unknown ones from the same address.

    The server keeps the verdicts fresh with :meth:`refresh` every ``refresh_every``
    seconds (None: paused), so requests rarely see one lapse. When one has (the re-read
    is late), re-checks are single-flight per key: the first request to see it gets MISS
    and re-checks (:meth:`scope_of`); until that answers (at most ``stale_for`` seconds),
    every other request with the key keeps the lapsed verdict instead of sending the same
    query to the thread pool.
    """

    def __init__(
        self,
        ttl: float = KEY_RECHECK_SECONDS,
        max_misses: int = MAX_REMEMBERED_MISSES,
        stale_for: float = KEY_STALE_SECONDS,
        max_refreshed: int = MAX_REFRESHED_KEYS,
    ) -> None:
        self.ttl = ttl
        self.max_misses = max_misses
        self.stale_for = stale_for
        self.max_refreshed = max_refreshed
        self.refresh_every: float | None = ttl / 2
        self._valid: dict[str, tuple[str, float]] = {}  # digest -> (scope, trusted until)
        self._misses: OrderedDict[str, float] = OrderedDict()  # digest -> trusted until
        self._rechecks: dict[str, float] = {}  # digest -> when its re-check began
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # held by a re-read under way

    def cached(self, key: str) -> str | None | object:
        """The remembered scope (None: known bad key), or MISS when nothing fresh is held:
        the caller is then the one to re-check it (a valid key's lapsed verdict is
        still answered while another caller's re-check of it is under way)."""
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            valid = self._valid.get(digest)
            if valid is not None:
                if valid[1] > now:
                    return valid[0]
                began = self._rechecks.get(digest)
                if began is not None and now - began < self.stale_for:
                    return valid[0]
                self._rechecks[digest] = now
                return MISS
            until = self._misses.get(digest)
        return None if until is not None and until > now else MISS

    def _fresh(self, digest: str, now: float) -> str | None | object:
        with self._lock:
            valid = self._valid.get(digest)
            if valid is not None:
                return valid[0] if valid[1] > now else MISS
            until = self._misses.get(digest)
        return None if until is not None and until > now else MISS

    def known(self, key: str) -> bool:
        """Was this key valid when last checked (fresh or not)?"""
        with self._lock:
            return hash_key(key) in self._valid

    def scope_of(self, session_factory: Callable[[], AbstractContextManager[Session]],
                 key: str) -> str | None:  # fmt: skip
        """The key's scope from the store (None: unknown or revoked), remembered; ends
        the key's re-check, if one was under way."""
        digest = hash_key(key)
        now = time.monotonic()  # before the query: a verdict is never older than it says
        try:
            cached = self._fresh(digest, now)
            if cached is not MISS:
                return cached  # type: ignore[return-value]
            with session_factory() as session:
                row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
                scope = row.scope if row is not None and row.revoked_at is None else None
            self._remember(digest, scope, now + self.ttl)
            return scope
        finally:
            with self._lock:
                self._rechecks.pop(digest, None)

    def refresh(self, session_factory: Callable[[], AbstractContextManager[Session]]) -> bool:
        """Every live key's verdict from the store in one query, trusted for ``ttl`` from
        before the query: keys found are valid (new ones included), keys held as valid
        and not found are revoked. A verdict some request checked after this query began
        is newer and kept. False, changing nothing, when the store holds more than
        ``max_refreshed`` live keys; nothing either once paused (:meth:`pause_refresh`)."""
        with self._refreshing:
            if self.refresh_every is None:
                return True
            now = time.monotonic()
            query = (
                select(ApiKey.key_hash, ApiKey.scope)
                .where(ApiKey.revoked_at.is_(None))
                .limit(self.max_refreshed + 1)
            )
            with session_factory() as session:
                live = dict(session.execute(query).tuples().all())
            if len(live) > self.max_refreshed:
                return False
            until = now + self.ttl
            with self._lock:
                for digest, (_, held_until) in list(self._valid.items()):
                    if digest not in live and held_until <= until:
                        self._miss(digest, until)
                for digest, scope in live.items():
                    valid = self._valid.get(digest)
                    missed = self._misses.get(digest)
                    if (valid is None or valid[1] <= until) and (missed is None or missed <= until):
                        self._valid[digest] = (scope, until)
                        self._misses.pop(digest, None)
            return True

    def pause_refresh(self) -> None:
        """No more background re-reads, and none under way when this returns (tests of
        the per-request re-check, which the re-read would otherwise pre-empt)."""
        with self._refreshing:
            self.refresh_every = None

    def _remember(self, digest: str, scope: str | None, until: float) -> None:
        with self._lock:
            if scope is not None:
                self._valid[digest] = (scope, until)
                self._misses.pop(digest, None)
            else:
                self._miss(digest, until)

    def _miss(self, digest: str, until: float) -> None:
        """Hold ``digest`` as no key until ``until`` (under ``_lock``)."""
        self._valid.pop(digest, None)
        self._misses[digest] = until
        self._misses.move_to_end(digest)
        while len(self._misses) > self.max_misses:
            self._misses.popitem(last=False)

    def sizes(self) -> tuple[int, int]:
        """(valid keys, remembered misses) held in memory."""
        with self._lock:
            return len(self._valid), len(self._misses)

    def clear(self) -> None:
        with self._lock:
            self._valid.clear()
            self._misses.clear()
            self._rechecks.clear()


def client_bucket(host: str | None) -> str:
    """The rate-limit bucket of a client address: the address itself, or its /64 network
    for IPv6 (one subscriber usually holds a whole /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{host}/64", strict=False))
    return host


class FailureLimiter:
    """A token bucket per client address that only failed key or token checks drain, so
    good traffic is never slowed: ``burst`` failures at once, then ``per_second``.

    Past ``max_clients`` addresses the one that failed least recently is forgotten (it
    starts again with a full bucket), so memory stays bounded however many addresses an
    attacker holds.
    """

    def __init__(self, max_clients: int = 100_000) -> None:
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # level, at
        self._lock = threading.Lock()

    def _level(self, client: str, burst: int, per_second: float, now: float) -> float:
        level, at = self._buckets.get(client, (float(burst), now))
        return min(float(burst), level + (now - at) * per_second)

    def wait(self, client: str, burst: int, per_second: float) -> float:
        """Seconds before this address may present an unknown key again (0: now)."""
        with self._lock:
            level = self._level(client, burst, per_second, time.monotonic())
        return 0.0 if level >= 1 else (1 - level) / per_second

    def fail(self, client: str, burst: int, per_second: float) -> float:
        """Count one failure; the seconds to wait when the address had none left (0: it
        had, this failure is answered as usual)."""
        now = time.monotonic()
        with self._lock:
            level = self._level(client, burst, per_second, now)
            if level < 1:
                self._buckets[client] = (level, now)
                self._buckets.move_to_end(client)
                return (1 - level) / per_second
            self._buckets[client] = (level - 1, now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return 0.0


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


# --- user tokens ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserToken:
    token: str
    user_id: str
    scope: str
    expires_at: datetime


def is_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def _signing_key(secret: str) -> bytes:
    """A key for tokens alone, derived from the deployment's secret: a token's signature
    is never the keyed hash of an id in an export, nor the other way round."""
    return hmac.new(secret.encode(), b"matchwise user token v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, body: str) -> str:
    return _b64(hmac.new(_signing_key(secret), body.encode(), hashlib.sha256).digest())


def mint_token(
    settings: Settings,
    user_id: str,
    scope: str = "user",
    seconds: int | None = None,
    now: float | None = None,
) -> UserToken:
    """A signed token acting for ``user_id`` with ``scope`` for ``seconds`` (default
    ``user_token_seconds``, at most ``user_token_max_seconds``)."""
    if scope not in TOKEN_SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(TOKEN_SCOPES)}, not {scope!r}")
    limit = settings.user_token_max_seconds
    lifetime = seconds if seconds is not None else min(settings.user_token_seconds, limit)
    if not 0 < lifetime <= limit:
        raise InvalidInput(
            f"expires_in: {lifetime} s is outside 1..{limit} s (user_token_max_seconds)"
        )
    expires = int((time.time() if now is None else now) + lifetime)
    body = _b64(orjson.dumps({"u": user_id, "s": scope, "e": expires}))
    token = f"{TOKEN_PREFIX}{body}.{_sign(settings.hash_secret, body)}"
    return UserToken(token, user_id, scope, datetime.fromtimestamp(expires, UTC))


def verify_token(secret: str, token: str, now: float | None = None) -> Principal:
    """The principal a token stands for; :class:`BadCredential` saying why when it is
    malformed, not signed with this deployment's secret, or expired."""
    body, _, signature = token.removeprefix(TOKEN_PREFIX).partition(".")
    if len(token) > _MAX_TOKEN_CHARS or not body or not signature:
        raise BadCredential("malformed user token")
    if not hmac.compare_digest(signature, _sign(secret, body)):
        raise BadCredential("invalid user token: its signature does not match")
    try:
        claims = orjson.loads(_unb64(body))
        user_id, scope, expires = claims["u"], claims["s"], claims["e"]
    except (ValueError, TypeError, KeyError):
        raise BadCredential("malformed user token") from None
    if not isinstance(user_id, str) or scope not in TOKEN_SCOPES or not isinstance(expires, int):
        raise BadCredential("malformed user token")
    if expires <= (time.time() if now is None else now):
        when = datetime.fromtimestamp(expires, UTC).isoformat()
        raise BadCredential(f"user token expired at {when}; mint a new one")
    return Principal(scope=scope, user_id=user_id)
