"""Redis as the shared online cache: the client, its health, and the outbox that makes
sure Redis never misses what it must hide.

The database's ranking cache stays the source of truth. Beside the lists (written by
``serve.online``), Redis keeps what must leave a list at once, checked by the read
script in the same round trip: a per-kind "hidden" set (item deactivated, profile held
by moderation) and a per-user "seen" set (whom the user decided on, who refused them).

Nothing of that may be lost while Redis is unreachable. Each change is written to the
``online_outbox`` table in the transaction that makes it (:func:`install_outbox` hooks
the runtime's write sessions); after the commit it is sent to Redis and its row deleted.
A row Redis did not get stays, and every API process runs a pump that delivers what is
left; while undelivered rows older than a moment exist (or this process failed to
deliver), its readers skip Redis and read the database, which is the truth.

A hung Redis costs little: short timeouts, and after three failures in a row a circuit
breaker skips Redis for ``redis_cooldown_seconds`` before trying again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio
from sqlalchemy import delete, event, insert, select
from sqlalchemy.orm import Session, sessionmaker

from matchwise.db import queries
from matchwise.db.notify import lists_changed
from matchwise.db.tables import Item, OnlineOutbox, User, utcnow
from matchwise.errors import StoreUnavailable
from matchwise.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "matchwise:"
_NOTED = "matchwise_online_noted"
_WRITTEN = "matchwise_online_outbox"
#: Breaker: this many failures in a row open it.
FAILURES_TO_OPEN = 3
#: The pump looks at the outbox this often; rows older than the grace period were not
#: delivered by the process that wrote them (it would have deleted them by now).
PUMP_SECONDS = 0.5
GRACE_SECONDS = 2.0

#: KEYS[1] the list, KEYS[2] the kind's hidden set, KEYS[3] the user's seen set;
#: returns {payload, positions to drop (1-based)}.
READ_SCRIPT = """
local payload = redis.call('GET', KEYS[1])
if not payload then return false end
local ids = cjson.decode(payload)['i']
local hidden = {}
for n = 1, #ids do
  if redis.call('SISMEMBER', KEYS[2], ids[n]) == 1
     or redis.call('SISMEMBER', KEYS[3], ids[n]) == 1 then
    hidden[#hidden + 1] = n
  end
end
return {payload, hidden}
"""


class Unavailable(StoreUnavailable):
    """Redis is skipped (breaker open) or did not answer."""


class Breaker:
    """Consecutive failures open it for ``cooldown`` seconds; then one call may try."""

    def __init__(self, cooldown: float, threshold: int = FAILURES_TO_OPEN) -> None:
        self.cooldown = cooldown
        self.threshold = threshold
        self.failures = 0
        self.open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.failures < self.threshold:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self.open_until:
                return False
            self.open_until = now + self.cooldown  # this caller tries; the rest wait
            return True

    def success(self) -> None:
        self.failures = 0

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.open_until = time.monotonic() + self.cooldown

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold


class OnlineHealth:
    """Whether this process may read Redis: the breaker is closed (or trying) and Redis
    is not missing changes the database has (undelivered outbox rows)."""

    def __init__(self, cooldown: float) -> None:
        self.breaker = Breaker(cooldown)
        self.stale = False

    def readable(self) -> bool:
        return not self.stale and self.breaker.allow()


def list_key(kind: str, user_id: str) -> str:
    return f"{PREFIX}rec:{kind}:{user_id}"


def hidden_key(kind: str) -> str:
    return f"{PREFIX}hidden:{kind}"


def seen_key(kind: str, user_id: str) -> str:
    """Candidates of ``kind`` no longer to show ``user_id`` (decided on, or who refused
    them); kept as long as a cached list lives."""
    return f"{PREFIX}seen:{kind}:{user_id}"


class OnlineCache:
    """Writes (refresh, hidden and seen sets, outbox delivery) with a blocking client;
    the API reads with :class:`AsyncReader` on its own event loop. One per process."""

    def __init__(self, url: str, settings: Settings) -> None:
        timeout = max(1.0, 10 * settings.redis_timeout_ms / 1000)
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)  # fmt: skip
        self.seen_ttl = max(settings.cache_max_age_seconds, 1)
        self.health = OnlineHealth(settings.redis_cooldown_seconds)
        self._queued: list[tuple[int, dict[str, Any]]] = []
        self._undelivered = False  # this process failed to deliver rows it wrote
        self._queue_lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()

    def _run(self, pipe: Any) -> Any:
        """Execute ``pipe`` through the breaker; :class:`Unavailable` when Redis is
        skipped or fails."""
        if not self.health.breaker.allow():
            raise Unavailable("Redis skipped: circuit breaker open")
        try:
            out = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self.health.breaker.failure()
            raise Unavailable(str(exc)) from exc
        self.health.breaker.success()
        return out

    def put(self, payloads: Iterable[tuple[str, bytes | None]], ttl_seconds: int) -> None:
        """Replace each key's value (one SET per key: atomic for its readers); None
        removes the key."""
        pipe = self.client.pipeline(transaction=False)
        for key, payload in payloads:
            if payload is not None:
                pipe.set(key, payload, ex=max(ttl_seconds, 1))
            else:
                pipe.delete(key)
        self._run(pipe)

    def set_visibility(self, kind: str, hidden: Iterable[str], shown: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        self._visibility(pipe, kind, list(hidden), list(shown))
        self._run(pipe)

    @staticmethod
    def _visibility(pipe: Any, kind: str, hidden: list[str], shown: list[str]) -> None:
        if hidden:
            pipe.sadd(hidden_key(kind), *hidden)
        if shown:
            pipe.srem(hidden_key(kind), *shown)

    def reconcile_hidden(self, session: Session, kind: str) -> int:
        """Make the hidden set match the database: everything not shown is hidden, ids
        that are shown again leave the set (ids gone from the store stay hidden)."""
        members = sorted(self.hidden(kind))
        hidden = _hidden_ids(session, kind)
        shown = set(members) - hidden - _missing(session, kind, members)
        self.set_visibility(kind, hidden, shown)
        return len(hidden)

    def hidden(self, kind: str) -> set[str]:
        members: Any = self.client.smembers(hidden_key(kind))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    def seen(self, kind: str, user_id: str) -> set[str]:
        members: Any = self.client.smembers(seen_key(kind, user_id))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    # --- the outbox ------------------------------------------------------------------

    def apply(self, session: Session, payloads: Iterable[dict[str, Any]]) -> None:
        """Send outbox payloads to Redis in one pipeline: hidden sets re-read from the
        database (the state now, whatever order the changes came in), seen pairs added.
        Both are idempotent, so a payload delivered twice does no harm."""
        hide: dict[str, set[str]] = {"user": set(), "item": set()}
        seen: dict[tuple[str, str], set[str]] = {}
        for payload in payloads:
            for kind, ids in payload.get("hide", {}).items():
                hide.setdefault(kind, set()).update(ids)
            for kind, pairs in payload.get("seen", {}).items():
                for viewer, candidate in pairs:
                    seen.setdefault((kind, viewer), set()).add(candidate)
        pipe = self.client.pipeline(transaction=False)
        for kind, ids in hide.items():
            if ids:
                shown = _shown_among(session, kind, sorted(ids))
                self._visibility(pipe, kind, sorted(ids - shown), sorted(shown))
        for (kind, viewer), candidates in seen.items():
            key = seen_key(kind, viewer)
            pipe.sadd(key, *sorted(candidates))
            pipe.expire(key, self.seen_ttl)
        self._run(pipe)

    def queue(self, row_id: int, payload: dict[str, Any]) -> None:
        """A committed outbox row this process delivers before it answers (see
        :meth:`deliver_outbox`)."""
        with self._queue_lock:
            self._queued.append((row_id, payload))

    def deliver_outbox(self, runtime: Any) -> bool:
        """Deliver the rows this process queued, then delete them; on failure they stay
        for the pump and this process's readers skip Redis until they are delivered."""
        with self._queue_lock:
            rows, self._queued = self._queued, []
        if not rows:
            return True
        try:
            with runtime.read_session() as session:
                self.apply(session, [payload for _, payload in rows])
        except Unavailable as exc:
            self._undelivered = True
            self.health.stale = True
            log.warning("Redis missed %d change(s) (%s); the outbox keeps them", len(rows), exc)
            return False
        _delete_outbox(runtime, [row_id for row_id, _ in rows])
        return True

    def drain(self, runtime: Any, grace: float = GRACE_SECONDS, batch: int = 1000) -> int:
        """Deliver what is left in the outbox (rows older than ``grace`` seconds, which
        their writers did not deliver; every row once this process failed to deliver
        its own); marks the process stale while any remain."""
        cutoff = utcnow() - timedelta(seconds=0 if self._undelivered else grace)
        delivered = 0
        while True:
            with runtime.read_session() as session:
                rows = session.execute(
                    select(OnlineOutbox.id, OnlineOutbox.payload)
                    .where(OnlineOutbox.created_at <= cutoff)
                    .order_by(OnlineOutbox.id)
                    .limit(batch)
                ).all()
                if not rows:
                    self._undelivered = False
                    self.health.stale = False
                    return delivered
                self.health.stale = True
                self.apply(session, [payload for _, payload in rows])  # Unavailable: stays
            _delete_outbox(runtime, [row_id for row_id, _ in rows])
            delivered += len(rows)

    def start_pump(self, runtime: Any, every: float = PUMP_SECONDS) -> None:
        """Deliver leftovers in a background thread until :meth:`close` (API processes)."""
        if self._pump is not None:
            return

        def pump() -> None:
            while not self._stop.wait(every):
                try:
                    if self.drain(runtime):
                        log.info("delivered leftover changes to Redis")
                except Unavailable:
                    self.health.stale = True
                except Exception as exc:  # the database may be away too: try again
                    log.warning("online cache pump failed (%s)", exc)

        self._pump = threading.Thread(target=pump, daemon=True, name="matchwise-outbox")
        self._pump.start()

    def close(self) -> None:
        self._stop.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None
        self.client.close()


def _delete_outbox(runtime: Any, ids: list[int]) -> None:
    with runtime.session() as session:
        session.execute(delete(OnlineOutbox).where(OnlineOutbox.id.in_(ids)))


class AsyncReader:
    """The API's read side: one round trip per request, no thread-pool hop; skipped
    while the process's :class:`OnlineHealth` says Redis may not be trusted or used."""

    def __init__(self, url: str, health: OnlineHealth, timeout_seconds: float) -> None:
        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.script = self.client.register_script(READ_SCRIPT)
        self.health = health
        self.attempts = 0  # round trips tried (tests read it)
        self._failures = 0

    async def fetch(self, kind: str, user_id: str) -> tuple[bytes, list[int]] | None:
        """The user's list payload and the positions (1-based) to drop from it, or None
        (no list, Redis skipped or unreachable)."""
        if not self.health.readable():
            return None
        self.attempts += 1
        try:
            found = await self.script(
                keys=[list_key(kind, user_id), hidden_key(kind), seen_key(kind, user_id)]
            )
        except (redis.RedisError, OSError) as exc:
            self.health.breaker.failure()
            self._failures += 1
            if self._failures == 1 or self._failures % 1000 == 0:
                log.warning("online cache unreachable (%s); reading the database cache", exc)
            return None
        self.health.breaker.success()
        self._failures = 0
        if not found:
            return None
        payload, hidden = found
        return payload, [int(n) for n in hidden]

    async def close(self) -> None:
        await self.client.aclose()


# --- changes noted in a transaction ---------------------------------------------------


def _noted(session: Session) -> dict[str, dict[str, Any]]:
    return session.info.setdefault(_NOTED, {"hide": {}, "seen": {}})


def note_visibility(session: Session, kind: str, ids: Iterable[str]) -> None:
    """Record that ``ids`` may have been shown or hidden; goes to Redis after the commit
    (and every server's copies of lists holding them are dropped)."""
    ids = set(ids)
    _noted(session)["hide"].setdefault(kind, set()).update(ids)
    lists_changed(session, candidates=ids)


def note_seen(session: Session, kind: str, pairs: Iterable[tuple[str, str]]) -> None:
    """Record ``(viewer, candidate)`` pairs: the candidate leaves the viewer's lists
    (in Redis after the commit; every server's copies of the viewer's lists are dropped)."""
    pairs = set(pairs)
    _noted(session)["seen"].setdefault(kind, set()).update(pairs)
    lists_changed(session, users={viewer for viewer, _ in pairs})


def install_outbox(sessions: sessionmaker[Session], cache: OnlineCache) -> None:
    """Sessions made by ``sessions`` (the runtime's write sessions) write what they noted
    to the outbox in their transaction and hand it to ``cache`` after their commit."""

    def write_outbox(session: Session) -> None:
        noted = session.info.pop(_NOTED, None)
        if not noted:
            return
        payload = {
            "hide": {k: sorted(v) for k, v in noted["hide"].items() if v},
            "seen": {k: sorted(map(list, v)) for k, v in noted["seen"].items() if v},
        }
        if not payload["hide"] and not payload["seen"]:
            return
        row_id = session.execute(
            insert(OnlineOutbox)
            .values(payload=payload, created_at=utcnow())
            .returning(OnlineOutbox.id)
        ).scalar_one()
        session.info[_WRITTEN] = (row_id, payload)

    def queue_delivery(session: Session) -> None:
        written = session.info.pop(_WRITTEN, None)
        if written is not None:
            cache.queue(*written)

    def forget(session: Session) -> None:
        session.info.pop(_NOTED, None)
        session.info.pop(_WRITTEN, None)

    event.listen(sessions, "before_commit", write_outbox)
    event.listen(sessions, "after_commit", queue_delivery)
    event.listen(sessions, "after_rollback", forget)


def _id_column(kind: str) -> Any:
    return User.id if kind == "user" else Item.id


def _shown_among(session: Session, kind: str, ids: list[str]) -> set[str]:
    """Those of ``ids`` that exist and may be shown (gone ones count as hidden)."""
    present = queries.existing_ids(session, _id_column(kind), ids)
    return present - queries.hidden_candidates(session, sorted(present), kind)


def _hidden_ids(session: Session, kind: str) -> set[str]:
    return set(session.scalars(select(_id_column(kind)).where(queries.hidden_clause(kind))))


def _missing(session: Session, kind: str, ids: list[str]) -> set[str]:
    return set(ids) - queries.existing_ids(session, _id_column(kind), ids)
