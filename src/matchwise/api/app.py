"""``create_app(settings)``: the FastAPI service; a lifespan opens the store once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchwise import __version__
from matchwise.actions import DEFAULT_ACTION_TABLE
from matchwise.api import gorse
from matchwise.api.dashboard.routes import install as install_dashboard
from matchwise.api.deps import Store
from matchwise.api.errors import install_error_handlers
from matchwise.api.key_refresh import keep_keys_fresh
from matchwise.api.middleware import ResponseHeaders
from matchwise.api.routes import ROUTERS
from matchwise.db.engine import AsyncHeldReads
from matchwise.db.online import AsyncReader
from matchwise.ops.auth import FailureLimiter, KeyCache
from matchwise.runtime import Runtime
from matchwise.schemas import ACTION_MARK
from matchwise.serve.broadcast import start_listener
from matchwise.serve.readiness import start_warm_up
from matchwise.settings import Settings, load_settings

MAX_BODY_BYTES = 16 * 1024 * 1024
#: Where the docs pages' scripts and styles are served from: Swagger UI 5 and Redoc as
#: the fastapi-offline package ships them, so the docs render without reaching a CDN.
DOCS_ASSETS = "/docs/assets"
#: How long start-up waits for the change-notice listener to connect (it keeps trying
#: in the background after that: the periodic checks cover the gap).
LISTEN_WAIT_SECONDS = 5.0
#: The path :func:`prime_routes` asks at start-up: no route has it.
PRIME_PATH = "/.matchwise/prime-routes"


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before they are read into memory, be
    they declared (``Content-Length``) or streamed (chunked)."""

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
                    raise BodyTooLarge(self.limit)
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await _too_large(send, self.limit)


class BodyTooLarge(StarletteHTTPException):
    """Raised while a streamed body is read; an HTTP error, so that FastAPI passes it on
    as a 413 instead of calling it a body it could not parse."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over {limit} bytes")


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
        runtime: Runtime = app.state.runtime
        app.state.store = Store(runtime)
        # change notices first, so that none sent during the warm-up is missed
        app.state.listener = listener = start_listener(runtime)
        await prime_routes(app)
        keys = None
        if runtime.settings.auth_enabled:
            keys = asyncio.create_task(keep_keys_fresh(app.state.key_cache, runtime))
        start_warm_up(runtime)  # in the background: /healthz at once, /readyz 503 until warm
        if listener is not None:
            await run_in_threadpool(listener.wait_connected, LISTEN_WAIT_SECONDS)
        if not runtime.is_sqlite:  # the cached read, awaited on this event loop
            app.state.store_reads = AsyncHeldReads(runtime.read_engine)
        if runtime.online is not None:
            app.state.online_reader = AsyncReader(
                runtime.online.url, runtime.online.health, runtime.settings.redis_timeout_ms / 1000
            )
            runtime.online.start_pump(runtime)
        yield
        if keys is not None:
            keys.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keys
        if listener is not None:
            await run_in_threadpool(listener.close)
            app.state.listener = None
        if app.state.online_reader is not None:
            await app.state.online_reader.close()
            app.state.online_reader = None
        if app.state.store_reads is not None:
            await app.state.store_reads.close()
            app.state.store_reads = None
        if owned:
            runtime.close()

    app = FastAPI(
        title="matchwise",
        version=__version__,
        description="Recommendations and matching for matching apps.",
        lifespan=lifespan,
        docs_url=None,  # served below, from local assets
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.online_reader = None  # Redis reader, opened by the lifespan when configured
    app.state.listener = None  # change notices (PostgreSQL), started by the lifespan
    app.state.store_reads = None  # cached reads on PostgreSQL, opened by the lifespan
    install_error_handlers(app)
    app.state.key_cache = KeyCache()
    app.state.auth_failures = FailureLimiter()  # failed keys/tokens per client address
    for part in ROUTERS:
        app.include_router(part)
    app.include_router(gorse.router)  # Gorse's REST API under /api (api/gorse)
    install_docs(app, settings)
    install_dashboard(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(ResponseHeaders)  # outermost of ours: every answer gets its headers
    return app


async def prime_routes(app: ASGIApp) -> None:
    """Send one request that no route matches through the whole stack, in process.
    FastAPI builds an included router's routes (their parameter models and validators)
    on the first request that reaches them: a path matching none reaches every router,
    so that cost (a third of the first people request at the small size, issue 21) is
    paid at start-up, not by the first caller."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": PRIME_PATH,
        "raw_path": PRIME_PATH.encode(), "root_path": "", "query_string": b"",
        "headers": [], "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    await app(scope, receive, send)


def install_docs(app: FastAPI, settings: Settings | None) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from local assets, and an OpenAPI document
    whose action fields list the actions this server accepts (its action table)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")),
              name="docs-assets")  # fmt: skip
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # cached by FastAPI on the app; completed here in place
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        chosen = runtime.settings if runtime is not None else settings
        table = chosen.action_table if chosen is not None else DEFAULT_ACTION_TABLE
        list_actions(schema, sorted(str(name) for name in table))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def list_actions(node: Any, actions: Iterable[str]) -> None:
    """Give every field marked :data:`ACTION_MARK` the server's actions as its enum: the
    defaults, and those ``actions:`` in matchwise.yaml adds."""
    actions = list(actions)
    if isinstance(node, dict):
        if node.pop(ACTION_MARK, False):
            node["enum"] = actions
        for value in node.values():
            list_actions(value, actions)
    elif isinstance(node, list):
        for value in node:
            list_actions(value, actions)


def app_factory() -> Any:
    """For ``uvicorn --factory matchwise.api.app:app_factory``."""
    return create_app()
