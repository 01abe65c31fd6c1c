"""What routes share: the runtime, the store's two roads, API keys and user tokens
checked before the body is read (failures rate-limited per address), the one helper that
binds a request's user ids to its caller, and bodies parsed strictly.

Writes run in worker threads behind a capacity limiter (one at a time on SQLite, the
write pool's size on PostgreSQL): a burst waits its turn on the event loop without
occupying the thread pool that reads and live recommendations use, and it never asks
the write pool for more connections than it has. Each write commits before the route
answers, so a 200 means the data is stored.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Annotated, Any, NoReturn, TypeVar, get_type_hints

import anyio
import orjson
from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from matchwise.errors import MalformedBody
from matchwise.ingest.profiles import check_batch_size
from matchwise.ops.auth import (
    ANYONE,
    MISS,
    BadCredential,
    Principal,
    client_bucket,
    is_token,
    retry_after,
    verify_token,
)
from matchwise.runtime import Runtime
from matchwise.schemas import Event, ImpressionEvent, InteractionIn, MatchEvent

T = TypeVar("T")
MAX_JSON_DEPTH = 1024  # orjson's own limit
#: ``openapi_extra`` of a route that user tokens may call (for their own user only); on
#: every other route a user token is refused before the body is read.
USER_TOKENS_FLAG = "x-user-tokens"
USER_TOKENS: dict[str, Any] = {USER_TOKENS_FLAG: True}


class Store:
    """A route's way to the store: :meth:`write` (a queued, committed transaction) and
    :meth:`read` (a read-only session in the thread pool)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        writers = 1 if runtime.is_sqlite else runtime.settings.write_concurrency
        self.writers = anyio.CapacityLimiter(writers)

    @property
    def settings(self) -> Any:
        return self.runtime.settings

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` committed before this returns (see ``Runtime.transaction``)."""
        return await anyio.to_thread.run_sync(self.runtime.transaction, fn, *args,
                                              limiter=self.writers)  # fmt: skip

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(self._read, fn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        with self.runtime.read_session() as session:
            return fn(session, *args)


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: a sync dependency costs a thread-pool hop per request."""
    return request.app.state.runtime


async def get_store(request: Request) -> Store:
    return request.app.state.store


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[Store, Depends(get_store)]


#: The two ways to present an API key or a user token, as FastAPI security schemes: they
#: are what :func:`authenticate` reads, and what the OpenAPI document declares on every
#: guarded route (the docs' Authorize button). ``auto_error=False``: the guard answers a
#: missing or bad credential itself, with its own messages, statuses and rate limit.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="An API key (`mw_...`), or a user token from `POST /v1/tokens` on the "
    "routes that take them: `Authorization: Bearer KEY`.",
    auto_error=False,
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="An API key in the `X-API-Key` header (user tokens go as a bearer).",
    auto_error=False,
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
ApiKeyDep = Annotated[str | None, Depends(API_KEY_HEADER)]


async def _presented_key(request: Request) -> str | None:
    """``Authorization: Bearer ...`` first, else ``X-API-Key``."""
    bearer = await BEARER(request)
    if bearer is not None:
        return bearer.credentials
    return await API_KEY_HEADER(request)


async def authenticate(request: Request) -> Principal:
    """The caller: a user token (its signature, no query) or an API key (from memory,
    which the server keeps fresh in the background: ``api.key_refresh``; else one query in
    the thread pool, so the event loop never blocks on the database).

    401 without a valid credential. Failures drain the address's bucket; once it is empty
    they are 429 with ``Retry-After``, and an unknown key is not even looked up (a key this
    process knows as valid, or a valid token, still passes: good traffic never waits).
    """
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.auth_enabled:
        return ANYONE
    credential = await _presented_key(request)
    if credential is None:
        raise HTTPException(
            401,
            "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if is_token(credential):
        try:
            return verify_token(settings.hash_secret, credential)
        except BadCredential as exc:
            _refuse(request, str(exc))
    cache = request.app.state.key_cache
    held = cache.cached(credential)
    if held is MISS:
        if not cache.known(credential):
            wait = request.app.state.auth_failures.wait(
                _client(request), settings.bad_key_burst, settings.bad_key_per_second
            )
            if wait > 0:
                raise _too_many(wait)
        held = await run_in_threadpool(cache.scope_of, runtime.read_session, credential)
    if held is None:
        _refuse(request, "invalid or revoked API key")
    return Principal(scope=str(held))


def _client(request: Request) -> str:
    return client_bucket(request.client.host if request.client else None)


def _refuse(request: Request, message: str) -> NoReturn:
    """401 for a failed credential, counted against the caller's address: 429 once the
    address has failed too often."""
    settings = request.app.state.runtime.settings
    wait = request.app.state.auth_failures.fail(
        _client(request), settings.bad_key_burst, settings.bad_key_per_second
    )
    if wait > 0:
        raise _too_many(wait)
    raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _too_many(wait: float) -> HTTPException:
    after = retry_after(wait)
    return HTTPException(
        429,
        f"too many invalid API keys or tokens from this address; retry in {after} s",
        headers={"Retry-After": after},
    )


async def check_key(request: Request, scope: str, users: bool = False) -> Principal:
    """401/429 without a valid key or token, 403 when its scope is not enough, or when it
    is a user token and the route does not take them (``users``); the caller, also kept
    on ``request.state.principal`` for the route."""
    principal = await authenticate(request)
    if principal.user_id is not None and not users:
        raise HTTPException(
            403,
            f"a user token acts for one user ({principal.user_id!r}) and may not call this "
            "route; it needs an API key",
        )
    if not principal.grants(scope):
        raise HTTPException(
            403, f"this {principal.kind} has scope {principal.scope!r}; this route needs {scope!r}"
        )
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency declaring the scope a route needs (the check itself already ran in
    :class:`GuardedRoute`, before the body was read; this one returns its caller)."""

    async def check(request: Request, _bearer: BearerDep, _key: ApiKeyDep) -> Principal:
        """``_bearer`` and ``_key`` declare the security schemes for the OpenAPI document."""
        checked: Principal | None = getattr(request.state, "principal", None)
        return checked if checked is not None else await check_key(request, scope)

    setattr(check, SCOPE_DECLARATION, scope)  # noqa: B010 (a marker on a function)
    return check


#: The attribute :func:`require` marks its dependency with: it declares a scope (and the
#: security schemes) that the route's guard has already checked.
SCOPE_DECLARATION = "matchwise_declares_scope"


def calls_straight(route: APIRoute) -> bool:
    """Whether FastAPI's request handling has nothing to add to calling the endpoint: it
    is a coroutine taking only the request and answering a Response, and the route's
    dependencies only declare the key's scope, which the guard checked before. Resolving
    those declarations on every request (the scope check and its two security schemes)
    cost the cached path several per cent; the OpenAPI document is built from them as
    before (nothing about the route changes)."""
    dependant = route.dependant
    params = (dependant.path_params, dependant.query_params, dependant.header_params,
              dependant.cookie_params, dependant.body_params)  # fmt: skip
    special = (dependant.websocket_param_name, dependant.http_connection_param_name,
               dependant.response_param_name, dependant.background_tasks_param_name,
               dependant.security_scopes_param_name)  # fmt: skip
    if any(params) or any(special) or dependant.request_param_name is None:
        return False
    if not all(getattr(sub.call, SCOPE_DECLARATION, None) for sub in dependant.dependencies):
        return False
    endpoint = route.endpoint
    if (
        not inspect.iscoroutinefunction(endpoint)
        or len(inspect.signature(endpoint).parameters) != 1
    ):
        return False
    answers = get_type_hints(endpoint).get("return")
    return isinstance(answers, type) and issubclass(answers, Response)


async def get_principal(request: Request) -> Principal:
    """The caller, as the route's guard found it before the body was read."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise RuntimeError(f"{request.url.path} is not a guarded route: no caller was checked")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def act_for(principal: Principal, *user_ids: str, actions: Iterable[str] = ()) -> None:
    """The one place a route binds the user ids of a request to its caller: an API key
    acts for anyone; a user token only for its own user, and it records swipes, never
    matches (a match needs both people's likes). 403 saying which rule was broken."""
    if principal.user_id is None:
        return
    for user_id in user_ids:
        if user_id != principal.user_id:
            raise HTTPException(
                403, f"this token acts for user {principal.user_id!r}, not for {user_id!r}"
            )
    if "match" in actions:
        raise HTTPException(
            403, "a user token may not record a match: matchwise makes one from mutual likes"
        )


def act_for_events(principal: Principal, events: Iterable[Event]) -> None:
    """:func:`act_for` over a batch: every event's user, and every action it records."""
    events = list(events)
    act_for(principal, *(e.user_id for e in events), actions=_actions(events))


def _actions(events: Iterable[Event]) -> Iterable[str]:
    for event in events:
        if isinstance(event, InteractionIn):
            yield event.action
        elif isinstance(event, MatchEvent):
            yield "match"
        elif not isinstance(event, ImpressionEvent):
            yield from (swipe.action for swipe in event.swipes)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def parse_json_body(request: Request) -> None:
    """Parse a JSON body once, strictly, with a message that says what is wrong: not
    UTF-8, not JSON, NaN or Infinity (not JSON either), nested over 1024 levels. FastAPI
    then validates the parsed value instead of parsing again."""
    if request.method not in ("POST", "PUT", "PATCH") or not _is_json(request):
        return
    body = await request.body()
    if not body:
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
        if problem.startswith(("Recursion limit", "depth limit")):
            problem = f"nested deeper than {MAX_JSON_DEPTH} levels"
        raise MalformedBody(f"body is not valid JSON: {problem}") from None
    if isinstance(parsed, dict):  # batches: refused by size before anything is validated
        limit = request.app.state.runtime.settings.max_batch_size
        for key, value in parsed.items():
            if isinstance(value, list):
                check_batch_size(len(value), limit, str(key))
    request._json = parsed  # Request.json() returns this


def guarded(scope: str | None) -> type[APIRoute]:
    """A route class that checks the API key or user token (when ``scope`` is set; user
    tokens only on routes marked :data:`USER_TOKENS`) and then parses the body, both
    before FastAPI reads and validates the body: a caller without a valid key learns
    nothing about the body and costs no parsing."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            users = bool((self.openapi_extra or {}).get(USER_TOKENS_FLAG))
            endpoint = self.endpoint if calls_straight(self) else None

            async def guarded_handler(request: Request) -> Response:
                if scope is not None:
                    await check_key(request, scope, users)
                await parse_json_body(request)
                if endpoint is not None:  # nothing for FastAPI to resolve (calls_straight)
                    answer: Response = await endpoint(request)
                    return answer
                return await handler(request)

            return guarded_handler

    GuardedRoute.__name__ = f"GuardedRoute[{scope or 'open'}]"
    return GuardedRoute


IngestScope = Depends(require("ingest"))
ReadScope = Depends(require("read"))
AdminScope = Depends(require("admin"))
