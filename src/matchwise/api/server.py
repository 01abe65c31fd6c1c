"""How ``matchwise serve`` runs the app: uvicorn with read timeouts and no banner.

uvicorn waits for a request's headers and body as long as the client likes, so a few
hundred connections sending a byte now and then (slowloris) hold the server's sockets
for as long as they please. The protocol below closes a connection whose headers are
not complete ``header_timeout`` seconds after the request began, or whose body stalls
for ``body_idle_timeout`` seconds or is not complete ``body_timeout`` seconds after its
headers. Keep-alive idling between requests is uvicorn's own ``timeout_keep_alive``.

It also writes each response in one go: uvicorn writes the head and the body with a
write (a syscall, a TCP segment, and on loopback the receiver's wake-up) each; a
response's writes made within one event-loop step are joined into one
(:class:`BatchedWrites`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from matchwise.settings import Settings, load_settings


class BatchedWrites:
    """A transport whose writes made within one event-loop step reach the socket as one
    write, at the end of the step: an answer's head and body (written one after the
    other, with nothing awaited between) go out together. Closing writes what is held
    first; everything else is the wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read timeouts."""

    header_timeout: ClassVar[float | None] = None  # None: from the settings, once per process
    body_idle_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._body_deadline = 0.0
        if type(self).header_timeout is None:
            _adopt(type(self), load_settings())

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # every write of the connection (responses, a 400, an upgrade's) goes through one
        # batch, so they reach the socket in the order they were made
        super().connection_made(BatchedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._arm(float(self.header_timeout or 10.0))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(float(self.header_timeout or 10.0))

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self.parser.get_method() not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
            self._body_deadline = time.monotonic() + self.body_timeout
            self._arm(min(self.body_idle_timeout, self.body_timeout))

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._read_timer is not None:
            left = self._body_deadline - time.monotonic()
            self._arm(max(0.0, min(self.body_idle_timeout, left)))

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that sent its request too slowly")
            self.transport.close()


def _adopt(cls: type[GuardedHttpProtocol], settings: Settings) -> None:
    cls.header_timeout = settings.http_header_timeout_seconds
    cls.body_idle_timeout = settings.http_body_idle_timeout_seconds
    cls.body_timeout = settings.http_body_timeout_seconds


def protocol_for(settings: Settings) -> type[GuardedHttpProtocol]:
    """The protocol with ``settings``' timeouts (for a server in this process; worker
    processes read their settings themselves)."""
    cls = type("ConfiguredHttpProtocol", (GuardedHttpProtocol,), {})
    _adopt(cls, settings)
    return cls


def uvicorn_options(settings: Settings | None = None) -> dict[str, Any]:
    """What every matchwise server passes uvicorn, besides the app, host and port."""
    http = GuardedHttpProtocol if settings is None else protocol_for(settings)
    return {"http": http, "server_header": False, "timeout_keep_alive": 5}
