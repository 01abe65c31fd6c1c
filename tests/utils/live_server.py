"""A real uvicorn server on a loopback port, in a thread of the test process, configured
as ``matchwise serve`` configures it (its protocol, timeouts, no banner).

Drills need a real server: real sockets, the real event loop and thread pool, and the
order in which a response leaves relative to a commit. Running it in-process lets a test
reach the runtime it serves (its engine, events on it) while clients talk HTTP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from matchwise.api.server import uvicorn_options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: FastAPI, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL."""
    port = free_port()
    runtime = getattr(app.state, "runtime", None)
    options = uvicorn_options(runtime.settings if runtime is not None else None)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", backlog=2048, **options)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"live-server-{port}")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start within {timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until_ready(url: str, timeout: float = 120.0) -> None:
    """Wait until the server at ``url`` answers ``/readyz`` with 200 (its warm-up is over)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10) as client:
        while client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server was not ready within {timeout} s")
            time.sleep(0.05)
