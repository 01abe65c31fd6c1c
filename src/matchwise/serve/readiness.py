"""Readiness (issue 21): a process reports ready only once its first request costs what
its hundredth does. The warm-up loads the active models, their indexes, the item and
people catalogues and the stored bio vectors (:func:`~matchwise.serve.state.warm_up`),
then computes a people list or two and an item list (what a first request would
otherwise pay: each model's lazily built structures, the first compilation of every
query). It
runs in a background thread after a start, so ``/healthz`` answers at once (alive) and
``/readyz`` 503 until it is over: a load balancer sends traffic only then."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from matchwise.runtime import Runtime
from matchwise.schemas import ReadyOut
from matchwise.serve.state import WarmUp, settle_heap, warm_up, warm_up_status
from matchwise.serve.tiers import live
from matchwise.serve.types import Kind, RecommendFilters

log = logging.getLogger(__name__)


def warm(runtime: Runtime) -> WarmUp:
    """Load everything, rehearse the lists of each kind the store serves, then mark the
    process ready (a failure is logged: the process is ready all the same, and what
    failed loads lazily)."""
    record = warm_up_status(runtime)
    began = time.perf_counter()
    warm_up(runtime)
    rehearsals: list[tuple[str, Kind]] = [(person, "user") for person in record.persons]
    if record.user is not None and record.items:
        rehearsals.append((record.user, "item"))
    with recorded_reads(runtime.read_engine) as reads:
        for user_id, kind in rehearsals:  # as a request computes it live: nothing is written
            if record.closed.is_set():
                break
            try:  # the request's own road: a read session and the held read connections
                live(runtime, user_id, None, kind, RecommendFilters())
            except Exception as exc:
                log.warning("warm-up: rehearsing a %s list failed (%s)", kind, exc)
    if not record.closed.is_set():
        _connect_pool(runtime.read_engine, reads)
    settle_heap()  # the warm-up's garbage is collected now, not by the first request
    record.seconds = round(time.perf_counter() - began, 3)
    record.done.set()
    log.info("ready: %d models, %d items, %d people (%d bio vectors) in %.1f s",
             len(record.models), record.items, record.people, record.bio_vectors,
             record.seconds)  # fmt: skip
    return record


#: The most distinct statements of the rehearsals that each pooled connection runs again.
MAX_REPLAYED_READS = 32


@contextmanager
def recorded_reads(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The reads (SELECT, WITH) run on ``engine`` inside the block, each once (its first
    parameters), in order, at most :data:`MAX_REPLAYED_READS`."""
    seen: dict[str, Any] = {}

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:  # fmt: skip
        if not executemany and len(seen) < MAX_REPLAYED_READS and _is_read(statement):
            seen.setdefault(statement, parameters)

    reads: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        reads.extend(seen.items())


def _is_read(statement: str) -> bool:
    return statement.lstrip()[:6].upper() in ("SELECT", "WITH")


def _connect_pool(engine: Engine, reads: list[tuple[str, Any]] | None = None) -> None:
    """Every connection the read pool keeps, connected and warmed now: the pool hands
    connections out oldest first, and one it holds unconnected (dropped, or never
    opened) would make the first request open a PostgreSQL session (tens of ms). Each
    runs the rehearsals' ``reads`` once: a PostgreSQL session's first statements on a
    table look up its catalogue and statistics (~3 ms against ~1 for the serving path's
    reads), and the first request would pay that on a connection only ``SELECT 1`` had
    touched."""
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    held = []
    try:
        for _ in range(size):
            held.append(connection := engine.connect())
            connection.exec_driver_sql("SELECT 1")
            for statement, parameters in reads or ():
                _replay(connection, statement, parameters)
            connection.rollback()  # held open, but never idle in a transaction
    except Exception as exc:
        log.warning("warm-up: connecting the read pool failed (%s)", exc)
    finally:
        for connection in held:
            try:
                connection.close()
            except Exception as exc:  # a connection the server ended meanwhile
                log.warning("warm-up: closing a read connection failed (%s)", exc)


def _replay(connection: Any, statement: str, parameters: Any) -> None:
    """One recorded read again (a read that fails now is skipped: warming is a help)."""
    try:
        connection.exec_driver_sql(statement, parameters)
    except Exception as exc:
        connection.rollback()  # the next one runs in a transaction that is not aborted
        log.debug("warm-up: replaying a read failed (%s)", exc)


def start_warm_up(runtime: Runtime) -> None:
    """Warm up in a background thread; with ``warm_up_on_start`` off, ready at once
    (everything then loads with the first requests)."""
    if not runtime.settings.warm_up_on_start:
        warm_up_status(runtime).done.set()
        return
    record = warm_up_status(runtime)
    record.thread = threading.Thread(target=warm, args=(runtime,), daemon=True,
                                     name="matchwise-warm-up")  # fmt: skip
    record.thread.start()


def readiness(runtime: Runtime) -> ReadyOut:
    """``ready`` once the warm-up is over, else ``warming``: what ``/readyz`` answers."""
    record = warm_up_status(runtime)
    if not record.done.is_set():
        return ReadyOut(status="warming")
    return ReadyOut(status="ready", models=record.models, items=record.items,
                    people=record.people, bio_vectors=record.bio_vectors,
                    seconds=record.seconds)  # fmt: skip


__all__ = ["readiness", "start_warm_up", "warm"]
