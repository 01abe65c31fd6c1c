"""Work a serving process does in a daemon thread so that no request waits for it: one
run at a time per key (a re-read asked for again while one is under way is not started
twice)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class OneAtATime:
    """Starts ``work`` in a daemon thread named ``matchwise-KEY`` unless one for that key
    is still running."""

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def start(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            if key in self._running:
                return
            self._running.add(key)

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._running.discard(key)

        threading.Thread(target=run, daemon=True, name=f"matchwise-{key}").start()
