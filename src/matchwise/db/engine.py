"""Engines and transactions; Alembic upgrade from code so the CLI and tests share it.

Two engines per store. The **write** engine runs every transaction that may write; on
SQLite it opens them with ``BEGIN IMMEDIATE``, so a writer takes the database lock when
it starts (waiting up to ``busy_timeout`` for another process) instead of failing on a
lock upgrade half-way through. The **read** engine has its own pool and read-only
connections (``query_only`` on SQLite, read-only transactions on PostgreSQL), so a
reader never waits for the write path's pool, and a write slipping into a read path
fails loudly instead of racing the writers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from matchwise.errors import Conflict, InvalidInput, StoreUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
Role = Literal["write", "read"]
T = TypeVar("T")

log = logging.getLogger(__name__)

#: PostgreSQL SQLSTATEs after which running the whole transaction again is safe and
#: usually succeeds: deadlock detected, serialization failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
#: What a PostgreSQL connection of the read engine is opened with.
READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"


def _sqlite_connect(role: Role) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if role == "read":
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    return on_connect


def _sqlite_begin(role: Role) -> Callable[[Any], None]:
    statement = "BEGIN IMMEDIATE" if role == "write" else "BEGIN"

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql(statement)

    return on_begin


def create_engine_for(url: str, role: Role = "write", **kwargs: Any) -> Engine:
    """An engine for ``url`` in ``role``; SQLite gets its folder created, WAL, foreign
    keys and explicit transactions (``BEGIN IMMEDIATE`` for writers)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect(role))
        event.listen(engine, "begin", _sqlite_begin(role))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if role == "read":
        kwargs.setdefault("connect_args", {"options": READ_ONLY_OPTIONS})
    return create_engine(url, **kwargs)


def _put_back(
    idle: deque[tuple[Any, float]],
    held: tuple[Any, float],
    keep: int,
    max_age_seconds: float,
    closed: bool,
) -> bool:
    """Put a held connection (and when it was opened) back among the ``idle`` ones, unless
    it is older than ``max_age_seconds``, ``keep`` are idle already or the holder is
    closed: the one rule of :class:`HeldReads` and :class:`AsyncHeldReads`. False: the
    caller closes it."""
    if closed or len(idle) >= keep or time.monotonic() - held[1] > max_age_seconds:
        return False
    idle.append(held)
    return True


class HeldReads:
    """Long-lived autocommit DBAPI connections of the read engine, for the serving path's
    one-statement reads (a cached list): one round trip per read.

    The read pool costs a cached read on PostgreSQL three round trips: the pre-ping on
    checkout, the query, and the rollback on checkin. Here a connection is taken from a
    stack of idle ones and put back as it is: no ping, and in autocommit nothing to roll
    back. Liveness is handled instead by ``max_age_seconds`` (a connection is closed
    rather than put back once that old) and by running a read again, once, on a fresh
    connection when the held one turns out to be dead (the server restarted, say).
    Connections come from the read engine's own connect (same settings, read-only) and
    are detached from its pool; at most ``keep`` idle ones are held, and any opened for
    a burst beyond that are closed after use.
    """

    def __init__(self, engine: Engine, keep: int = 8, max_age_seconds: float = 300.0) -> None:
        self.engine = engine
        self.dialect: Dialect = engine.dialect
        self.keep = keep
        self.max_age_seconds = max_age_seconds
        self._idle: deque[tuple[Any, float]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._error: type[Exception] = getattr(engine.dialect.dbapi, "Error", OSError)

    def run(self, fn: Callable[[Any], T]) -> T:
        """``fn(dbapi_connection)`` on a held connection; a dead one is replaced and
        ``fn`` run once more. Driver errors become :class:`StoreUnavailable`."""
        for attempt in (1, 2):
            held = self._take()
            try:
                out = fn(held[0])
            except self._error as exc:
                self._discard(held[0])
                if attempt == 1 and self._dead(exc, held[0]):
                    log.info("a held read connection was dead (%s); reading again", exc)
                    continue
                raise StoreUnavailable(f"database error: {exc}") from exc
            except BaseException:
                self._discard(held[0])
                raise
            self._give(held)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self) -> tuple[Any, float]:
        try:
            return self._idle.pop()  # deque.pop is atomic: no lock on the hot path
        except IndexError:
            return self._open(), time.monotonic()

    def _open(self) -> Any:
        try:
            fairy = self.engine.raw_connection()
        except (DBAPIError, PoolTimeout) as exc:
            raise StoreUnavailable(f"database error: {exc}") from exc
        fairy.detach()  # ours from now on: the pool neither pings nor resets it
        conn: Any = fairy.dbapi_connection
        if self.dialect.name != "sqlite":  # SQLite's connect already set isolation_level None
            conn.autocommit = True
        return conn

    def _give(self, held: tuple[Any, float]) -> None:
        if not _put_back(self._idle, held, self.keep, self.max_age_seconds, self._closed):
            self._discard(held[0])
            return
        if self._closed:  # closed meanwhile: close() may have missed this one
            self.close()

    def _dead(self, exc: Exception, conn: Any) -> bool:
        dead = self.dialect.is_disconnect(exc, conn, None)  # type: ignore[arg-type]
        return bool(dead) or bool(getattr(conn, "closed", False))

    @staticmethod
    def _discard(conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 (closing a dead connection may fail too)
            log.debug("closing a held read connection failed", exc_info=True)

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            while self._idle:
                self._discard(self._idle.pop()[0])


class AsyncHeldReads:
    """:class:`HeldReads` for the event loop, PostgreSQL only: long-lived autocommit
    psycopg async connections, so a cached read is awaited where the request runs.

    Through :class:`HeldReads` each cached read on PostgreSQL also cost a hop to a worker
    thread and back: measured in one process, 87 µs of CPU a read on the calling thread
    against 207 µs through ``anyio.to_thread`` (113 µs awaited here), and under load the
    threads took turns on the GIL besides. The same rules as :class:`HeldReads`: one round
    trip a read (no ping, nothing to roll back), a connection older than
    ``max_age_seconds`` is closed rather than reused, one the server dropped is replaced
    and the read run once more, at most ``keep`` idle ones are held. At most ``max_open``
    reads run at once (as many as the read pool and the thread pool allowed before); a
    burst beyond waits its turn instead of opening a connection a request. Connections
    are made with the read engine's settings (read-only transactions) and belong to the
    event loop that opened them: the API's lifespan makes one of these and closes it.
    """

    def __init__(
        self, engine: Engine, keep: int = 8, max_open: int = 40, max_age_seconds: float = 300.0
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"held async reads are for PostgreSQL, not {engine.dialect.name}")
        self.dialect: Dialect = engine.dialect
        _, self._connect_params = engine.dialect.create_connect_args(engine.url)
        self.keep = keep
        self.max_age_seconds = max_age_seconds
        self._idle: deque[tuple[Any, float]] = deque()
        self._open_slots = asyncio.Semaphore(max_open)
        self._closed = False
        self.opened = 0  # connections opened so far (tests read it)

    async def rows(self, sql: str, params: Any) -> list:
        """All rows of ``sql`` as driver tuples; a dead connection is replaced and the read
        run once more. Driver errors become :class:`StoreUnavailable`."""
        async with self._open_slots:
            return await self._rows(sql, params)

    async def _rows(self, sql: str, params: Any) -> list:
        for attempt in (1, 2):
            held = await self._take()
            try:
                cursor = held[0].cursor()
                await cursor.execute(sql, params)
                out = list(await cursor.fetchall())
            except psycopg.Error as exc:
                dead = held[0].closed  # the server dropped it (psycopg marks it BAD)
                await self._discard(held[0])
                if attempt == 1 and dead:
                    log.info("a held read connection was dead (%s); reading again", exc)
                    continue
                raise StoreUnavailable(f"database error: {exc}") from exc
            except BaseException:
                await self._discard(held[0])
                raise
            await self._give(held)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    async def _take(self) -> tuple[Any, float]:
        if self._closed:
            raise StoreUnavailable("the API is shutting down")
        try:
            return self._idle.pop()
        except IndexError:
            pass
        try:
            conn = await psycopg.AsyncConnection.connect(
                **{"options": READ_ONLY_OPTIONS, **self._connect_params}, autocommit=True
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"database error: {exc}") from exc
        self.opened += 1
        return conn, time.monotonic()

    async def _give(self, held: tuple[Any, float]) -> None:
        if not _put_back(self._idle, held, self.keep, self.max_age_seconds, self._closed):
            await self._discard(held[0])

    @staticmethod
    async def _discard(conn: Any) -> None:
        try:
            await conn.close()
        except Exception:  # noqa: BLE001 (closing a dead connection may fail too)
            log.debug("closing a held read connection failed", exc_info=True)

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closed = True
        while self._idle:
            await self._discard(self._idle.pop()[0])


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def store_error(exc: BaseException) -> BaseException:
    """The error a caller sees for a database failure: what kind of failure and what to
    do, never the driver's text (it carries process ids, table names, SQL). The detail
    goes to the log."""
    if isinstance(exc, PoolTimeout):
        log.warning("database pool exhausted: %s", exc)
        return StoreUnavailable(
            "the store is busy: every connection is in use; retry shortly", public=True
        )
    if isinstance(exc, IntegrityError):
        log.warning("integrity error: %s", exc.orig)
        return Conflict("the request conflicts with data changed at the same time; retry it")
    if isinstance(exc, DataError):
        log.warning("data error: %s", exc.orig)
        return InvalidInput("a value does not fit the store (out of range or not storable)")
    if isinstance(exc, OperationalError | InterfaceError):
        orig = getattr(exc, "orig", exc)
        log.error("database error: %s", orig)
        if "locked" in str(orig) or _sqlstate(exc) in RETRYABLE_SQLSTATES:
            return StoreUnavailable(
                "the store is busy with other writes; retry shortly", public=True
            )
        return StoreUnavailable("the store cannot be reached or failed; retry shortly", public=True)
    return exc  # a programming error: the API answers a plain 500, the log has the detail


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    """A transaction that failed this way can simply be run again (PostgreSQL deadlock
    or serialization failure: the database already rolled it back)."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in RETRYABLE_SQLSTATES


@contextmanager
def session_scope(
    engine: Engine | None = None, factory: sessionmaker[Session] | None = None
) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Database failures
    become :class:`StoreUnavailable` / :class:`Conflict` with a message fit for clients."""
    session = factory() if factory is not None else Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        if session.in_transaction():  # else nothing to commit (a cached or live read
            session.commit()  # that needed no store): 20 µs of ORM bookkeeping saved
    except (DBAPIError, PoolTimeout) as exc:
        session.rollback()
        raise store_error(exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def run_transaction(
    factory: sessionmaker[Session],
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 4,
) -> T:
    """``fn(session, *args)`` in one transaction, committed before this returns; run
    again (with a short, growing pause) when PostgreSQL aborted it for a deadlock or a
    serialization failure, which only means another transaction got there first."""
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(factory=factory) as session:
                return fn(session, *args)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if attempt == attempts or cause is None or not is_retryable(cause):
                raise
            log.info("transaction aborted (%s); running it again", _sqlstate(cause))
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    if url.startswith("sqlite"):
        create_engine_for(url).dispose()  # creates the folder
    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
