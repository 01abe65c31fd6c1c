"""One version everywhere: each API server listens for the store's change notices and
applies them to its serving state at once.

The notices are PostgreSQL ``NOTIFY`` messages (:mod:`matchwise.db.notify`), sent in the
transaction that activates or rolls back a version, or writes profiles or items, so a
server hears a change exactly when it commits; applying one is a registry read and, for
a new version, a background load (the old version serves until it is in), or a
background catalogue reload. A listener thread owns one dedicated autocommit
connection; when it breaks, the thread reconnects with backoff and then re-reads
everything, since notices sent meanwhile are lost. The periodic checks
(``registry_check_seconds``, the catalogues' age) stay as the safety net.

SQLite is one host: there is no listener; another process's change is seen by polling,
and this process's own activations invalidate its state directly.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from matchwise.db.notify import Notice, can_listen, listen, listener_dsn, ping, received
from matchwise.runtime import Runtime
from matchwise.serve.state import serving_state

log = logging.getLogger(__name__)

#: How long one wait for notices lasts (how soon ``close`` is noticed), how often a quiet
#: connection is checked with a round trip (often: copies of lists are answered only
#: while it answers, see ``db.copies``), and the longest pause between reconnections.
WAIT_SECONDS = 0.2
PING_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0


class Listener:
    """The thread that listens for change notices and applies them (one per server)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.dsn = listener_dsn(runtime.engine)
        self.connected = threading.Event()
        self.applied = 0  # notices applied (tests and logs read it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="matchwise-listen")

    def start(self) -> Listener:
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Whether the listener is connected within ``timeout`` seconds."""
        return self.connected.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS + 5)

    def _run(self) -> None:
        delay = WAIT_SECONDS
        while not self._stop.is_set():
            try:
                connection = listen(self.dsn)
            except psycopg.Error as exc:
                log.warning("cannot listen for change notices (%s); again in %.1f s",
                            exc, delay)  # fmt: skip
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = WAIT_SECONDS
            try:
                self.connected.set()
                self._catch_up()
                self._listen(connection)
            except psycopg.Error as exc:
                log.warning("lost the change-notice connection (%s); reconnecting", exc)
            finally:
                self.runtime.list_copies.deaf()  # notices may be lost from here
                self.connected.clear()
                connection.close()

    def _listen(self, connection: psycopg.Connection[Any]) -> None:
        """Apply notices as they come; a quiet connection is checked with a round trip
        every :data:`PING_SECONDS`, and each notice or answer tells the copies of lists
        that nothing was missed so far."""
        copies = self.runtime.list_copies
        ping(connection)
        copies.heard()
        checked = time.monotonic()
        while not self._stop.is_set():
            for notice in received(connection, WAIT_SECONDS):
                self._apply(notice)
                copies.heard()
                checked = time.monotonic()
            if time.monotonic() - checked >= PING_SECONDS:
                ping(connection)
                copies.heard()
                checked = time.monotonic()

    def _apply(self, notice: Notice) -> None:
        """One notice to the serving state; a failure is logged (the periodic checks
        will catch up) and never stops the listener."""
        state, engine = serving_state(self.runtime), self.runtime.read_engine
        try:
            if notice.topic == "lists":
                copies = self.runtime.list_copies
                if notice.everything:
                    copies.drop_all()
                else:
                    copies.drop(notice.users, notice.candidates)
            elif notice.topic == "registry":
                state.registry_changed(engine, notice.model_type)
            else:
                state.store_changed(engine, notice.topic, notice.users)
        except Exception as exc:
            log.warning("could not apply the %s change notice (%s)", notice.topic, exc)
        self.applied += 1

    def _catch_up(self) -> None:
        """After (re)connecting: what notices may have been missed, re-read."""
        for notice in (Notice("lists", everything=True), Notice("registry"), Notice("user"),
                       Notice("item")):  # fmt: skip
            self._apply(notice)


def start_listener(runtime: Runtime) -> Listener | None:
    """The running listener of an API server on PostgreSQL; None on SQLite."""
    if not can_listen(runtime.engine):
        return None
    return Listener(runtime).start()


__all__ = ["Listener", "start_listener"]
