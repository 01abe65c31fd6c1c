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

from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from matchwise.runtime import Runtime
from matchwise.schemas import ReadyOut
from matchwise.serve.recommend import recommend
from matchwise.serve.state import WarmUp, settle_heap, warm_up, warm_up_status
from matchwise.serve.types import Kind

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
    for user_id, kind in rehearsals:  # as a request computes it live: nothing is written
        if record.closed.is_set():
            break
        try:
            with runtime.read_session() as session:
                recommend(runtime, session, user_id, kind=kind, use_cache=False)
        except Exception as exc:
            log.warning("warm-up: rehearsing a %s list failed (%s)", kind, exc)
    if not record.closed.is_set():
        _connect_pool(runtime.read_engine)
    settle_heap()  # the warm-up's garbage is collected now, not by the first request
    record.seconds = round(time.perf_counter() - began, 3)
    record.done.set()
    log.info("ready: %d models, %d items, %d people (%d bio vectors) in %.1f s",
             len(record.models), record.items, record.people, record.bio_vectors,
             record.seconds)  # fmt: skip
    return record


def _connect_pool(engine: Engine) -> None:
    """Every connection the read pool keeps, connected and checked now: the pool hands
    connections out oldest first, and one it holds unconnected (dropped, or never
    opened) would make the first request open a PostgreSQL session (tens of ms)."""
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    held = []
    try:
        for _ in range(size):
            held.append(connection := engine.connect())
            connection.exec_driver_sql("SELECT 1")
            connection.rollback()  # held open, but never idle in a transaction
    except Exception as exc:
        log.warning("warm-up: connecting the read pool failed (%s)", exc)
    finally:
        for connection in held:
            try:
                connection.close()
            except Exception as exc:  # a connection the server ended meanwhile
                log.warning("warm-up: closing a read connection failed (%s)", exc)


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
