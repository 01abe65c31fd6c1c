"""What every response carries, and what no response may carry.

Each request gets an id (the caller's ``X-Request-ID`` when it is a sane one), echoed in
the response and put in server-error bodies and the log, so a person can match a 500 to
its log line without the body saying anything internal. The API's answers are personal:
``Cache-Control: no-store`` keeps them out of shared caches, and ``nosniff`` stops a
browser from guessing a type. An exception that escapes everything else becomes a plain
500 here, with the id, so even that answer carries the headers.
"""

from __future__ import annotations

import logging
import re
import uuid

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchwise.redaction import redact

log = logging.getLogger("matchwise.api")

_SANE_ID = re.compile(rb"^[A-Za-z0-9._\-]{1,64}$")
_PERSONAL = ("/v1/",)


def request_id(scope: Scope) -> str:
    """The id :class:`ResponseHeaders` gave this request (``-`` outside one)."""
    return str((scope.get("state") or {}).get("request_id", "-"))


class ResponseHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")
        rid = given.decode() if _SANE_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        extra = [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]
        if str(scope.get("path", "")).startswith(_PERSONAL):
            extra.append((b"cache-control", b"no-store"))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:  # the client left (or was cut off for being too slow)
            log.info("request %s: the client disconnected", rid)
        except Exception as exc:
            log.error("request %s failed: %s", rid, redact(repr(exc)), exc_info=exc)
            if started:
                raise
            message = f"internal server error (request id {rid})"
            body = orjson.dumps({"error": "internal", "message": message, "request_id": rid})
            json_type = [(b"content-type", b"application/json")]
            await send_with_headers(
                {"type": "http.response.start", "status": 500, "headers": json_type}
            )
            await send_with_headers({"type": "http.response.body", "body": body})
