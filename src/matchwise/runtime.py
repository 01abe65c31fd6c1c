"""Runtime: settings, the store's engines and everything a process keeps while it runs
(loaded models, catalogues, the online cache), opened once by the CLI, the API or a worker.
Nothing of that lives at module level: two runtimes in one process share nothing.

Writes and reads take different roads (see :mod:`matchwise.db.engine`). On SQLite, which
has one writer at a time, this process also queues its own writers on a lock before
they touch the database, so a burst waits its turn in order instead of many connections
spinning on the file lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from matchwise.db.copies import ListCopies, install_list_copies
from matchwise.db.engine import (
    create_engine_for,
    current_revision,
    run_transaction,
    session_factory,
    session_scope,
    upgrade,
)
from matchwise.db.notify import take_profiles_written
from matchwise.db.online import OnlineCache, install_outbox
from matchwise.db.tables import DeploymentSecret, ModelVersion, utcnow
from matchwise.errors import StoreUnavailable
from matchwise.redaction import redact
from matchwise.settings import Settings, load_settings

T = TypeVar("T")
log = logging.getLogger(__name__)

#: glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on
#: 64-bit (HEAP_MAX/2: 32 MiB).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory(mib: int) -> bool:
    """Let this process keep up to ``mib`` MiB of freed memory for its next allocations
    (glibc's trim threshold) and take arrays up to 32 MiB from it rather than from fresh
    mappings (its mmap threshold): a batch that frees and allocates the same large arrays
    block after block then stops paying a page fault for every 4 KiB it takes back, ~20 µs
    each in a virtual machine. The process's state, not a runtime's: call it where a batch
    process starts. False (nothing changed) for 0 or where the C library is not glibc."""
    if mib <= 0:
        return False
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False
    trim = min(mib, 2047) << 20  # an int in C
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, trim)
    )


def give_back_freed_memory() -> bool:
    """Hand the pages the C heap holds free back to the kernel (glibc's ``malloc_trim``).

    glibc returns freed memory on its own only from the top of each heap; a large object
    replaced wholesale (a serving catalogue reloaded beside the one it replaces) leaves
    its pages free in the middle, where they count in the process's RSS until something
    reuses them: the server's memory then climbs in steps at every reload. Costs a walk
    of the free lists (milliseconds), so call it after such a replacement, not per
    request. False where the C library is not glibc (nothing done)."""
    trim = _glibc("malloc_trim", (ctypes.c_size_t,))
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _glibc(name: str, argtypes: tuple[Any, ...]) -> Any:
    """The C library's function ``name`` (returning an int), looked up once: finding the
    library runs ``ldconfig`` in a subprocess, too slow to repeat at every reload. None
    where there is no such function (not glibc)."""
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


@dataclass
class Runtime:
    settings: Settings
    engine: Engine  # transactions that may write
    read_engine: Engine  # read-only work: serving, listings, key checks
    online: OnlineCache | None = None  # Redis, when ``settings.redis_url`` is set
    _writer: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _components: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    _components_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Cached lists kept in memory by API servers (PostgreSQL: while their listener hears
    #: change notices; SQLite: while the database's change stamp holds; db.copies).
    list_copies: ListCopies[Any] = field(init=False, repr=False)
    #: Called, by name, with the profiles each committed write transaction of this process
    #: wrote (the serving state patches them into its people catalogue on SQLite, where no
    #: change notice comes; db.notify.take_profiles_written)
    profile_listeners: dict[str, Callable[[list[str]], None]] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def open(cls, settings: Settings | None = None, migrate: bool = True) -> Runtime:
        """Open the store; with ``migrate`` apply pending migrations first (idempotent)."""
        settings = settings or load_settings()
        if migrate:
            try:
                upgrade(settings.database_url)
            except Exception as exc:  # connection refused, bad credentials, ...
                raise StoreUnavailable(
                    redact(f"cannot open the store at {settings.database_url}: {exc}")
                ) from exc
        engine = create_engine_for(settings.database_url, "write", **_pool(settings, "write"))
        read_engine = create_engine_for(settings.database_url, "read", **_pool(settings, "read"))
        settings.hash_secret = hash_secret(settings, engine, read_engine)
        online = OnlineCache(settings.redis_url, settings) if settings.redis_url else None
        return cls(settings=settings, engine=engine, read_engine=read_engine, online=online)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """On SQLite, one writer of this process at a time, in arrival order. Nesting a
        write transaction in another on one thread would wait for itself: refused."""
        if not self.is_sqlite:
            yield
            return
        if getattr(self._local, "writing", False):
            raise RuntimeError("a write transaction was opened inside another one on SQLite")
        with self._writer:
            self._local.writing = True
            try:
                yield
            finally:
                self._local.writing = False

    def __post_init__(self) -> None:
        self._sessions: sessionmaker[Session] = session_factory(self.engine)
        self.list_copies = ListCopies(self.settings.list_copies, self.settings.list_copy_seconds)
        install_list_copies(self._sessions, self.list_copies)  # this process's own writes
        event.listen(
            self._sessions, "after_commit", _tell_profile_listeners(self.profile_listeners)
        )
        event.listen(self._sessions, "after_rollback", take_profiles_written)
        if self.online is not None:  # write sessions note what Redis must learn
            install_outbox(self._sessions, self.online)

    def component(self, key: Any, make: Callable[[], T]) -> T:
        """This runtime's one instance of a piece of process state (the serving state, the
        loaded safety model...), made on first use."""
        with self._components_lock:
            if key not in self._components:
                self._components[key] = make()
            return self._components[key]  # type: ignore[no-any-return]

    def forget(self, key: Any) -> None:
        """Drop a component (the next use makes a fresh one), as a new process would."""
        with self._components_lock:
            self._components.pop(key, None)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction that may write, committed when the block ends."""
        with self._write_turn(), session_scope(factory=self._sessions) as session:
            yield session
        self.after_write()

    def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in one write transaction, committed before it returns
        (run again if PostgreSQL aborted it for a deadlock): what the API's writes use."""
        with self._write_turn():
            result = run_transaction(self._sessions, fn, *args)
        self.after_write()
        return result

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction on the read engine (never waits for writers)."""
        with session_scope(self.read_engine) as session:
            yield session

    def after_write(self) -> None:
        """Hand what committed transactions queued for Redis to Redis (no-op without)."""
        if self.online is not None:
            self.online.deliver_outbox(self)

    def revision(self) -> str | None:
        return current_revision(self.read_engine)

    def close(self) -> None:
        with self._components_lock:
            components, self._components = list(self._components.values()), {}
        for component in components:  # background threads, open clients
            close = getattr(component, "close", None)
            if callable(close):
                close()
        if self.online is not None:
            self.online.close()
        self.engine.dispose()
        self.read_engine.dispose()


def _tell_profile_listeners(
    listeners: dict[str, Callable[[list[str]], None]],
) -> Callable[[Session], None]:
    """The after-commit hook calling ``listeners`` with the profiles a transaction wrote.
    It holds the listeners, not the runtime: a runtime nobody holds any more (a CLI
    command's) is then freed at once with its connections, not by a later collection."""

    def committed(session: Session) -> None:
        written = take_profiles_written(session)
        for listener in list(listeners.values()) if written else ():
            try:
                listener(written)
            except Exception as exc:  # committed all the same: a reload will catch up
                log.warning("a listener of written profiles failed (%s)", exc)

    return committed


def _pool(settings: Settings, role: str) -> dict[str, Any]:
    """Pool sizes: the API never runs more writers than the write pool holds (see
    ``api.deps``), so writes never time out waiting for a connection; reads get a pool
    of their own as large as the thread pool that runs them."""
    if settings.is_sqlite:
        return (
            {"pool_size": 2, "max_overflow": 8}
            if role == "write"
            else {"pool_size": 8, "max_overflow": 40}
        )
    if role == "write":
        return {"pool_size": settings.write_concurrency, "max_overflow": 4, "pool_timeout": 10}
    return {"pool_size": 8, "max_overflow": 32, "pool_timeout": 10}


#: The ``hash_secret`` default that ships with the code: public, so never used to hash.
SHIPPED_HASH_SECRET = Settings.model_fields["hash_secret"].default
HASH_SECRET = "hash_secret"


def hash_secret(settings: Settings, engine: Engine, read_engine: Engine) -> str:
    """The operator's ``hash_secret``, else the store's own: generated at its first run and
    kept in ``deployment_secrets``, so hashed ids stay stable across restarts and hosts
    (trained models keep finding their users) and no deployment hashes with a key anyone
    can read in the source. ``Runtime.open`` puts it in ``settings.hash_secret``."""
    chosen = settings.hash_secret
    if chosen != SHIPPED_HASH_SECRET and "hash_secret" in settings.model_fields_set:
        return chosen
    if "hash_secret" in settings.model_fields_set:
        log.warning("hash_secret is the development default shipped with matchwise; "
                    "hashing with this store's own generated secret instead")  # fmt: skip
    find = select(DeploymentSecret.value).where(DeploymentSecret.name == HASH_SECRET)
    try:
        with read_engine.connect() as conn:
            stored = conn.execute(find).scalar()
        if stored is not None:
            return str(stored)
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        with engine.begin() as conn:  # two hosts starting at once: the first insert wins
            conn.execute(
                insert(DeploymentSecret)
                .values(name=HASH_SECRET, value=secrets.token_urlsafe(32), created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            stored = conn.execute(find).scalar_one()
            trained = conn.execute(select(ModelVersion.id).limit(1)).first() is not None
    except DBAPIError as exc:
        raise StoreUnavailable(
            f"cannot read this deployment's hash secret ({type(exc.orig).__name__}); "
            "is the store reachable and migrated (`matchwise db upgrade`)?"
        ) from exc
    log.info("generated this deployment's hash secret (stored in deployment_secrets)")
    if trained:
        log.warning("models trained before hashed user ids with the old shipped secret and "
                    "serve their users the fallback until the next retrain "
                    "(`matchwise jobs enqueue retrain`)")  # fmt: skip
    return str(stored)
