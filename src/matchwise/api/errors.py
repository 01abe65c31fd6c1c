"""One place mapping errors to HTTP responses; a 5xx never leaks a traceback or an
internal (a host, a path, a driver's message): it names what failed and a request id."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from matchwise.api.middleware import request_id
from matchwise.db.engine import store_error
from matchwise.errors import MatchwiseError, StoreUnavailable
from matchwise.redaction import redact

log = logging.getLogger(__name__)


def _code(exc: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        if p.isdigit():
            out += f"[{p}]"
        elif p in ("InteractionIn", "ImpressionEvent", "SwipeBatchEvent", "MatchEvent") or p in (
            "interaction", "impression", "swipe_batch", "match",
        ):  # fmt: skip
            continue  # discriminated-union tags add noise to the path
        else:
            out += ("." if out else "") + p
    return out or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MatchwiseError)
    async def _matchwise(request: Request, exc: MatchwiseError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _store(request: Request, exc: Exception) -> JSONResponse:
        """A store failure that escaped a transaction scope (a raw read, a pool)."""
        mapped = store_error(exc)
        if not isinstance(mapped, MatchwiseError):
            raise exc
        return _error_response(request, mapped)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for err in exc.errors():
            where = _location(tuple(err.get("loc", ())))
            problem = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "json_invalid":
                where, problem = (
                    "body",
                    "not valid JSON (or not UTF-8): "
                    + str(err.get("ctx", {}).get("error", problem)),
                )
            details.append({"field": where, "problem": problem})
        first = details[0] if details else {"field": "request", "problem": "invalid"}
        message = f"{first['field']}: {first['problem']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more problems)"
        return JSONResponse(
            status_code=422,
            content={"error": "invalid_input", "message": message, "details": details},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": HTTP_CODES.get(exc.status_code, "http_error"),
                     "message": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )  # fmt: skip


HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large",
              429: "too_many_requests"}  # fmt: skip


def _error_response(request: Request, exc: MatchwiseError) -> JSONResponse:
    """The JSON error; a server error says what failed in the caller's terms, with the
    request id that finds the detail in the log."""
    status = exc.status_code
    content: dict[str, object] = {"error": _code(exc), "message": exc.client_message()}
    if status >= 500:
        rid = request_id(request.scope)
        log.error("request %s: %s: %s", rid, type(exc).__name__, redact(str(exc)))
        content["message"] = f"{content['message']} (request id {rid})"
        content["request_id"] = rid
    headers = None
    if isinstance(exc, StoreUnavailable):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    return JSONResponse(status_code=status, content=content, headers=headers)
