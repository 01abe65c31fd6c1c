"""Which tier answers a request: Redis when it has a fresh list, else the database cache,
else the list is computed live. The API's route only asks; this is where the order lives.

Where each tier runs matters for speed: a Redis read is awaited on the event loop; a
SQLite read is a local file read of tens of microseconds that never waits for a writer
(WAL), so it runs on the event loop too, which saves the thread hop that costs more than
the read; a PostgreSQL read and a live computation are waited on in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio

from matchwise.db.online import AsyncReader
from matchwise.runtime import Runtime
from matchwise.serve.cache import read_cache_from
from matchwise.serve.online import decode
from matchwise.serve.recommend import recommend
from matchwise.serve.types import Kind, RecommendationList, RecommendFilters, cacheable

T = TypeVar("T")


async def answer(
    runtime: Runtime,
    reader: AsyncReader | None,
    user_id: str,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
    fresh: bool = False,
) -> RecommendationList:
    """The user's recommendations from the first tier that has them (``fresh`` skips the
    caches); raises NotFound for an unknown user."""
    filters = filters or RecommendFilters()
    request = None if fresh else cacheable(runtime.settings, limit, kind, filters)
    if request is not None:
        top_n, list_kind = request
        max_age = runtime.settings.cache_max_age_seconds
        fetched = None if reader is None else await reader.fetch(list_kind, user_id)
        if fetched is not None:
            payload, hidden = fetched
            found = decode(payload, hidden, user_id, list_kind, top_n, max_age, datetime.now(UTC))
            if found is not None:
                return found
        found = await on_store(runtime, read_cache_from, runtime.read_engine, user_id, top_n,
                               list_kind, max_age)  # fmt: skip
        if found is not None:
            return found
    return await anyio.to_thread.run_sync(live, runtime, user_id, limit, kind, filters)


def live(
    runtime: Runtime,
    user_id: str,
    limit: int | None,
    kind: Kind | None,
    filters: RecommendFilters,
) -> RecommendationList:
    """Computed now, on a read-only session (never the cache)."""
    with runtime.read_session() as session:
        return recommend(runtime, session, user_id, limit=limit, kind=kind, filters=filters,
                         use_cache=False)  # fmt: skip


async def on_store(runtime: Runtime, fn: Callable[..., T], *args: Any) -> T:
    """Run a short store read where it costs least (see the module's docstring)."""
    if runtime.is_sqlite:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)
