"""API keys' verdicts kept fresh in the background, so that no request waits on the store
to learn whether its key is still good.

Without it a key's verdict lapsed every second and the next request with it queried
the store in a worker thread before its own work: after any idle spell (a quiet night,
or simply the first request after a start) that re-check met a cold connection and a
new thread, ~3 ms of the ~10 ms the first people request cost over the rest (issue 21).
One query for every live key twice a second is cheaper than that for every server, and
a revocation still acts within :data:`~matchwise.ops.auth.KEY_RECHECK_SECONDS` plus one
query's time.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from matchwise.errors import StoreUnavailable
from matchwise.ops.auth import KeyCache
from matchwise.runtime import Runtime

log = logging.getLogger(__name__)
#: How often a paused refresher looks whether it was resumed.
PAUSED_POLL_SECONDS = 0.1


async def keep_keys_fresh(cache: KeyCache, runtime: Runtime) -> None:
    """Re-read every live key each ``cache.refresh_every`` seconds until cancelled. A
    failed re-read is logged once (and its recovery): meanwhile verdicts lapse as they
    would without it, and requests re-check their keys themselves."""
    failing = False
    too_many = False
    while True:
        every = cache.refresh_every
        if every is None:
            await asyncio.sleep(PAUSED_POLL_SECONDS)
            continue
        try:
            held = await run_in_threadpool(cache.refresh, runtime.read_session)
        except Exception as exc:  # noqa: BLE001 (the store away, or anything: keep going)
            if not failing:
                log.warning(
                    "API keys could not be re-read (%s); each request re-checks its key "
                    "as its verdict lapses until the store answers",
                    type(exc).__name__,
                    exc_info=not isinstance(exc, StoreUnavailable | OSError),
                )
            failing = True
        else:
            if failing:
                log.info("API keys re-read again")
            failing = False
            if not held and not too_many:
                log.warning(
                    "more than %d live API keys: they are not re-read in the background; "
                    "each request re-checks its key as its verdict lapses",
                    cache.max_refreshed,
                )
            too_many = not held
        await asyncio.sleep(every)
