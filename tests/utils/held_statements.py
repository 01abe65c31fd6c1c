"""A slow store, for tests of who waits on a read: the statements an engine runs that a
test picks are counted (with the thread each ran in) and held until released; the
statements themselves run for real."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event


class HeldStatements:
    """Holds each statement on ``engine`` that ``picks`` until :meth:`release` (at most
    ``hold_seconds``); use as a context manager."""

    def __init__(self, engine: Any, picks: Callable[[str], bool], hold_seconds: float = 5) -> None:
        self.engine = engine
        self.picks = picks
        self.hold_seconds = hold_seconds
        self.threads: list[str] = []  # the thread of each picked statement, in order
        self.started = threading.Event()
        self.released = threading.Event()

    @property
    def count(self) -> int:
        return len(self.threads)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.picks(statement):
            self.threads.append(threading.current_thread().name)
            self.started.set()
            self.released.wait(timeout=self.hold_seconds)

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> HeldStatements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        event.remove(self.engine, "before_cursor_execute", self._seen)
