"""Cached lists made by a retired version are re-made in the background.

After an activation or a rollback, a user's cached list (Redis or the database) still
names the version that made it. When the API serves such a list, the list is served as
it is (it says which version made it: ``model_version``) and queued here; one thread per
process recomputes it with the active models and replaces it in both caches, so the
user's next read gets the new version's list. Serving it live instead would turn every
cache hit after an activation into a live computation at once; this re-makes the lists
of the users who come back, one at a time, without slowing any request.
"""

from __future__ import annotations

import logging
import queue
import threading

from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import serving_state
from matchwise.serve.types import Kind, RecommendationList

log = logging.getLogger(__name__)

#: Lists waiting to be re-made, at most (more are dropped: their next read asks again).
CAPACITY = 10_000
#: How long a re-made list is, at least (what ``refresh`` writes by default).
REFRESH_TOP_N = 50


class StaleLists:
    """The queue of cached lists to re-make, and the thread that re-makes them."""

    def __init__(self, runtime: Runtime, capacity: int = CAPACITY) -> None:
        self.runtime = runtime
        self.remade = 0  # lists re-made (tests and logs read it)
        self._queue: queue.Queue[tuple[str, Kind]] = queue.Queue(capacity)
        self._pending: set[tuple[str, Kind]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, result: RecommendationList, kind: Kind) -> bool:
        """Queue ``result``'s list for re-making when a retired version made it; says
        whether it did. Costs a set lookup: it runs on every cache hit."""
        state = serving_state(self.runtime)
        if not state.retired(result.model_version, self.runtime.read_engine):
            return False
        key = (result.user_id, kind)
        with self._lock:
            if key in self._pending or self._stop.is_set():
                return True
            try:
                self._queue.put_nowait(key)
            except queue.Full:
                return True
            self._pending.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="matchwise-remake")  # fmt: skip
                self._thread.start()
        return True

    def _work(self) -> None:
        top_n = max(self.runtime.settings.default_top_n, REFRESH_TOP_N)
        while not self._stop.is_set():
            try:
                user_id, kind = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                refresh_users(self.runtime, [user_id], top_n=top_n, kind=kind)
                self.remade += 1
            except Exception as exc:  # the stale list keeps serving; its next read retries
                log.warning("could not re-make %s's cached list (%s)", user_id, exc)
            finally:
                with self._lock:
                    self._pending.discard((user_id, kind))

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)


def stale_lists(runtime: Runtime) -> StaleLists:
    """The runtime's queue of lists to re-make (closed with the runtime)."""
    return runtime.component(StaleLists, lambda: StaleLists(runtime))


def remake_if_retired(runtime: Runtime, result: RecommendationList, kind: Kind) -> None:
    """Serve ``result`` as it is; when a retired version made it, re-make it meanwhile."""
    stale_lists(runtime).check(result, kind)


__all__ = ["StaleLists", "remake_if_retired", "stale_lists"]
