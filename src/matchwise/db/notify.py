"""Change notices between processes: PostgreSQL ``NOTIFY`` on one channel, sent inside
the transaction that makes the change, so a notice is delivered exactly when the change
commits (never before, never for a rollback) to every process that ``LISTEN``s.

What is announced: a registry change (an activation or a rollback, by model type),
profiles or items written (by kind), and cached lists that may have changed (``lists``:
whose, or which candidates they may hold, or all). Receivers re-read the store; a notice
carries no data they would trust instead of it. A lost notice costs freshness (the
periodic checks still run; copies of lists expire, and are dropped whenever the
listener's connection breaks, see :mod:`matchwise.db.copies`). SQLite has no such thing:
there, other processes poll, and a notice is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

CHANNEL = "matchwise_serving"
#: The listener connections' ``application_name`` (how ``pg_stat_activity`` shows them).
LISTENER_NAME = "matchwise-listener"
Topic = Literal["registry", "user", "item"]
TOPICS: frozenset[str] = frozenset({"registry", "user", "item", "lists"})
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
#: A ``lists`` notice naming more ids than fit in this many bytes says "all" instead
#: (PostgreSQL refuses a payload of 8,000 bytes or more).
MAX_PAYLOAD_BYTES = 7000
#: Where a write session keeps the lists it changed, for this process's own copies.
LISTS_CHANGED = "matchwise_lists_changed"
#: Where a write session keeps the profiles it wrote, for this process's own catalogue.
PROFILES_WRITTEN = "matchwise_profiles_written"


@dataclass(frozen=True)
class Notice:
    """One change announced on :data:`CHANNEL`: its topic; for ``registry`` the model
    type activated or rolled back; for ``user`` the profiles written when named
    (``users``; none: any); for ``lists`` whose lists may have changed, which candidates
    they may hold, or ``everything``."""

    topic: str
    model_type: str | None = None
    users: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def parse(cls, payload: str) -> Notice | None:
        """None for a payload this version does not know (a newer peer's, say)."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("topic") not in TOPICS:
            return None
        model_type = data.get("model_type")
        users, candidates = data.get("users", []), data.get("candidates", [])
        if not isinstance(users, list) or not isinstance(candidates, list):
            return cls(str(data["topic"]), everything=True)  # a shape we cannot read: all
        return cls(str(data["topic"]), str(model_type) if model_type else None,
                   tuple(map(str, users)), tuple(map(str, candidates)),
                   bool(data.get("all", False)))  # fmt: skip


def notify(
    session: Session, topic: Topic, model_type: str | None = None, ids: Iterable[str] = ()
) -> None:
    """Announce a change in ``session``'s transaction: PostgreSQL delivers it at commit,
    and folds identical notices of one transaction into one, however many batches a
    transaction wrote. ``ids``: the profiles written (``user``), when they fit in a
    notice: receivers then read those alone (a notice without them: everything). They are
    noted for this process too (:func:`take_profiles_written`): on SQLite there are no
    notices, and its own catalogue should not wait for a reload."""
    named = sorted(set(ids))
    if topic == "user" and named:
        session.info.setdefault(PROFILES_WRITTEN, set()).update(named)
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    body: dict[str, Any] = {"topic": topic, "model_type": model_type}
    payload = json.dumps({**body, "users": named}, separators=(",", ":"))
    if not named or len(payload.encode()) > MAX_PAYLOAD_BYTES:
        payload = json.dumps(body, separators=(",", ":"))
    connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


def lists_changed(
    session: Session,
    users: Iterable[str] = (),
    candidates: Iterable[str] = (),
    everything: bool = False,
) -> None:
    """Announce, in ``session``'s transaction, that the cached lists of ``users``, those
    holding one of ``candidates``, or (``everything``) all of them may have changed; and
    note it for this process's own copies, dropped after the commit (``Runtime``)."""
    users, candidates = sorted(set(users)), sorted(set(candidates))
    if not (users or candidates or everything):
        return
    body = {"topic": "lists", "users": users, "candidates": candidates}
    payload = json.dumps(body, separators=(",", ":"))
    if everything or len(payload.encode()) > MAX_PAYLOAD_BYTES:
        everything, users, candidates = True, [], []
        payload = json.dumps({"topic": "lists", "all": True}, separators=(",", ":"))
    noted = session.info.setdefault(LISTS_CHANGED, {"users": set(), "candidates": set(),
                                                    "all": False})  # fmt: skip
    noted["users"].update(users)
    noted["candidates"].update(candidates)
    noted["all"] = noted["all"] or everything
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


def take_lists_changed(session: Session) -> dict[str, Any] | None:
    """What ``session`` noted with :func:`lists_changed` (and forget it)."""
    noted: dict[str, Any] | None = session.info.pop(LISTS_CHANGED, None)
    return noted


def take_profiles_written(session: Session) -> list[str]:
    """The profiles ``session`` announced with :func:`notify` (and forget them)."""
    return sorted(session.info.pop(PROFILES_WRITTEN, ()))


def can_listen(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def listener_dsn(engine: Engine) -> str:
    """The libpq URL of ``engine``'s database (password included), for a connection of
    the listener's own: ``LISTEN`` needs a session that no pool (nor a transaction-pooling
    proxy) hands to anyone else."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def listen(dsn: str, connect_timeout: int = 5) -> psycopg.Connection[Any]:
    """A dedicated autocommit connection listening on :data:`CHANNEL`; TCP keepalives
    make a silently vanished server an error within seconds instead of a hang."""
    connection = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout,
                                 application_name=LISTENER_NAME, keepalives=1,
                                 keepalives_idle=10, keepalives_interval=5,
                                 keepalives_count=3)  # fmt: skip
    connection.execute(f"LISTEN {CHANNEL}")
    return connection


def received(connection: psycopg.Connection[Any], timeout: float) -> Iterator[Notice]:
    """Each notice as it arrives, for ``timeout`` seconds; raises
    psycopg.OperationalError when the connection is lost."""
    for notice in connection.notifies(timeout=timeout):
        parsed = Notice.parse(notice.payload)
        if parsed is not None:
            yield parsed


def ping(connection: psycopg.Connection[Any]) -> None:
    """A round trip: raises psycopg.OperationalError when the server is gone."""
    connection.execute("SELECT 1")
