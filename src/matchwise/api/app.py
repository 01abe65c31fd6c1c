"""``create_app(settings)``: the FastAPI service; a lifespan opens the store once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchwise import __version__
from matchwise.api.errors import install_error_handlers
from matchwise.api.routes import admin_router, ingest_router, read_router, router
from matchwise.auth import KeyCache
from matchwise.runtime import Runtime
from matchwise.settings import Settings, load_settings

MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {"error": "payload_too_large", "message": f"request body is over {limit} bytes"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the service. Tests pass a ``runtime`` on their own store."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "runtime", None) is None:
            app.state.runtime = Runtime.open(settings or load_settings())
            owned = True
        else:
            owned = False
        if app.state.runtime.settings.warm_up_on_start:
            from starlette.concurrency import run_in_threadpool

            from matchwise.serving import warm_up

            await run_in_threadpool(warm_up, app.state.runtime)
        redis_url = app.state.runtime.settings.redis_url
        if redis_url:
            from matchwise.online_cache import AsyncReader

            app.state.online_reader = AsyncReader(redis_url)
        yield
        if app.state.online_reader is not None:
            await app.state.online_reader.close()
            app.state.online_reader = None
        if owned:
            app.state.runtime.close()

    app = FastAPI(
        title="matchwise",
        version=__version__,
        description="Recommendations and matching for matching apps.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.online_reader = None  # Redis reader, opened by the lifespan when configured
    install_error_handlers(app)
    app.state.key_cache = KeyCache()
    for part in (router, ingest_router, read_router, admin_router):
        app.include_router(part)
    app.add_middleware(BodyLimit)
    return app


def app_factory() -> Any:
    """For ``uvicorn --factory matchwise.api.app:app_factory``."""
    return create_app()
