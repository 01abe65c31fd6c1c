"""Which tier answers a request: Redis when it has a fresh list, else the database cache,
else the list is computed live. The API's route only asks; this is where the order lives.

Where each tier runs matters for speed: a Redis read is awaited on the event loop; a
SQLite read is a local file read of tens of microseconds that never waits for a writer
(WAL), so it runs on the event loop too, which saves the thread hop that costs more than
the read; a PostgreSQL cached read is awaited on the event loop on held async connections
(``store``, the API's). A live computation runs on the event loop when nothing it needs
is left to load (``live_on_event_loop``; on PostgreSQL its two reads awaited first): its
work holds the GIL either way, and the hop and the threads' turns on the GIL cost more
than the work. Anything else live is waited on in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio

from matchwise.db import queries
from matchwise.db.copies import change_stamp
from matchwise.db.engine import AsyncHeldReads, HeldReads
from matchwise.db.online import AsyncReader
from matchwise.runtime import Runtime
from matchwise.serve.cache import Packed, pack, read_cache_awaited, read_cache_from, unpack
from matchwise.serve.experiments import Assignment, assign, experiment_book
from matchwise.serve.freshness import remake_if_retired
from matchwise.serve.online import decode
from matchwise.serve.recommend import explain_again, in_experiment, recommend
from matchwise.serve.state import serving_state
from matchwise.serve.types import (
    Kind,
    Page,
    RecommendationList,
    RecommendFilters,
    cacheable,
    resolve_request,
)

T = TypeVar("T")


async def answer(
    runtime: Runtime,
    reader: AsyncReader | None,
    user_id: str,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
    fresh: bool = False,
    page: Page | None = None,
    explain: bool = False,
    store: AsyncHeldReads | None = None,
) -> RecommendationList:
    """The ``page`` (default: the first ``limit``) of the user's recommendations from the
    first tier that holds it (``fresh`` skips the caches); raises NotFound for an
    unknown user. Every tier cuts the page the same way (:meth:`Page.cut`). ``explain``
    on a cached list computes its candidates' explanations now, and the list says so.
    ``store``: the database cache is read there, awaited (else where
    :func:`on_store` says)."""
    filters = filters or RecommendFilters()
    page = page or Page()
    request = None if fresh else cacheable(runtime.settings, limit, kind, filters)
    assigned = None
    if request is not None:  # an experiment arm other than the control is scored live
        assigned = await _assignment(runtime, user_id, request[1])
        if assigned is not None and assigned.needs_live:
            request = None
    if request is not None:
        top_n, list_kind = request
        fetch = page.fetch(top_n)
        max_age = runtime.settings.cache_max_age_seconds
        copied = runtime.list_copies.configured and (store is not None or runtime.is_sqlite)
        if copied:
            found = copied_list(runtime, user_id, fetch, list_kind, max_age, store is None)
            if found is not None and page.holds(found, top_n):
                return await _served(runtime, found, page, top_n, list_kind, explain, assigned)
        since = runtime.list_copies.turn()
        fetched = None if reader is None else await reader.fetch(list_kind, user_id)
        if fetched is not None:
            payload, hidden = fetched
            found = decode(payload, hidden, user_id, list_kind, fetch, max_age, datetime.now(UTC))
            if found is not None and page.holds(found, top_n):
                if copied:
                    keep_copy(runtime, found, fetch, list_kind, since)
                return await _served(runtime, found, page, top_n, list_kind, explain, assigned)
        if store is not None:
            found = await read_cache_awaited(store, user_id, fetch, list_kind, max_age)
        else:
            found = await on_store(runtime, read_cache_from, held_reads(runtime), user_id,
                                   fetch, list_kind, max_age)  # fmt: skip
        if found is not None and copied:
            keep_copy(runtime, found, fetch, list_kind, since)
        if found is not None and page.holds(found, top_n):
            return await _served(runtime, found, page, top_n, list_kind, explain, assigned)
    inputs = None  # SQLite: read on a held connection, a local read that never waits
    if computes_on_event_loop(runtime, kind, store):
        if store is None:
            return live(runtime, user_id, limit, kind, filters, page, explain)
        # PostgreSQL: the two round trips awaited, the loop serving others meanwhile; what
        # changed during them (an activation to load, say) sends the request to a thread
        inputs = await queries.serving_inputs_awaited(store, user_id)
        if computes_on_event_loop(runtime, kind, store):
            return live(runtime, user_id, limit, kind, filters, page, explain, inputs)
    return await anyio.to_thread.run_sync(live, runtime, user_id, limit, kind, filters, page,
                                          explain, inputs)  # fmt: skip


async def _served(
    runtime: Runtime,
    found: RecommendationList,
    page: Page,
    top_n: int,
    kind: Kind,
    explain: bool,
    assigned: Assignment | None,
) -> RecommendationList:
    """A cached list, from whichever tier, as answered: re-made meanwhile when a retired
    version made it, the page cut, explained if asked, naming the experiment arm."""
    remake_if_retired(runtime, found, kind)
    found = await _explained(runtime, page.cut(found, top_n), kind, explain)
    return in_experiment(found, assigned)


def copied_list(
    runtime: Runtime, user_id: str, fetch: int, kind: Kind, max_age: int, sqlite: bool
) -> RecommendationList | None:
    """The user's cached list from this server's memory when it holds one young enough
    (see :mod:`matchwise.db.copies`): on PostgreSQL no round trip; on SQLite one
    ``PRAGMA data_version`` first, whose change drops every copy."""
    copies = runtime.list_copies
    if sqlite:
        copies.observe(change_stamp(held_reads(runtime)))
    kept: Packed | None = copies.get(user_id, (kind, fetch))
    if kept is None or (datetime.now(UTC) - kept[1]).total_seconds() > max_age:
        return None
    return unpack(kept, user_id, kind)


def keep_copy(
    runtime: Runtime, found: RecommendationList, fetch: int, kind: Kind, since: int
) -> None:
    """Keep a list read from Redis or the database in turn ``since`` (db.copies)."""
    packed = pack(found)
    runtime.list_copies.keep(found.user_id, (kind, fetch), packed, packed[2], since)


def computes_on_event_loop(
    runtime: Runtime, kind: Kind | None, store: AsyncHeldReads | None = None
) -> bool:
    """Whether a live request may run on the event loop: for items (a people list may
    load the people catalogue for a new profile), with no experiment running (an
    interleaved list is written down) and with everything it needs loaded
    (``ServingState.items_loaded``); its one read (the user's profile and history) is
    then, on SQLite, a held read connection's local read that never waits for a writer;
    on PostgreSQL (``live_on_event_loop: always``) awaited on ``store``'s async
    connections, so the loop serves other requests during the round trips (and a
    database that stops answering holds only the requests that wait for it).

    In a worker thread a live request competes for the GIL with a busy event loop and
    loses: with cached reads keeping the loop busy, live requests on PostgreSQL took
    p50 10 ms, p99 210-320 ms at 56-78 a second, against p50 1.3-2.0 ms, p99 2-22 ms at
    460-710 a second on the loop (benchmarks/RESULTS.md, 5 Dec)."""
    settings = runtime.settings
    where = settings.live_on_event_loop
    if where == "never" or (where == "sqlite" and not runtime.is_sqlite):
        return False
    if not runtime.is_sqlite and store is None:  # no read to await: a worker thread
        return False
    if resolve_request(settings, None, kind)[1] != "item":
        return False
    if experiment_book(runtime).current(runtime.read_engine) != ():
        return False
    return serving_state(runtime).items_loaded()


def held_reads(runtime: Runtime) -> HeldReads:
    """The runtime's held read connections for the cached read: one round trip each
    (no pool pre-ping, no rollback; see :class:`HeldReads`)."""
    return runtime.component(HeldReads, lambda: HeldReads(runtime.read_engine))


async def _assignment(runtime: Runtime, user_id: str, kind: Kind) -> Assignment | None:
    """The user's experiment arm; the running experiments are read from the store only
    every few seconds (where a store read runs, see the module docstring)."""
    book = experiment_book(runtime)
    running = book.current(runtime.read_engine)
    if running is None:
        running = await on_store(runtime, book.load, runtime.read_engine)
    return assign(running, user_id, kind, datetime.now(UTC))


async def _explained(
    runtime: Runtime, result: RecommendationList, kind: Kind, explain: bool
) -> RecommendationList:
    if not explain:
        return result
    return await anyio.to_thread.run_sync(explain_cached, runtime, result, kind)


def explain_cached(runtime: Runtime, result: RecommendationList, kind: Kind) -> RecommendationList:
    """A cached list's explanations, computed now on a read-only session."""
    with runtime.read_session() as session:
        return explain_again(runtime, session, result, kind)


def live(
    runtime: Runtime,
    user_id: str,
    limit: int | None,
    kind: Kind | None,
    filters: RecommendFilters,
    page: Page | None = None,
    explain: bool = False,
    inputs: tuple[queries.Profile, queries.History] | None = None,
) -> RecommendationList:
    """Computed now, on a read-only session (never the cache); the user's profile and
    history (``inputs`` when read already) are read on the held read connections, so the
    session opens no transaction unless serving state needs the store (a model or
    catalogue to load)."""
    with runtime.read_session() as session:
        return recommend(runtime, session, user_id, limit=limit, kind=kind, filters=filters,
                         use_cache=False, page=page, explain=explain,
                         reads=None if inputs else held_reads(runtime), inputs=inputs)  # fmt: skip


async def on_store(runtime: Runtime, fn: Callable[..., T], *args: Any) -> T:
    """Run a short store read where it costs least (see the module's docstring)."""
    if runtime.is_sqlite:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)
