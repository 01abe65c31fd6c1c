"""What every route module shares: one router per key scope, built the same way wherever a
resource has routes of that scope, and the error responses each scope declares.

A router's scope checks the key or token before the body is read (:func:`guarded`) and
declares the scope as a dependency, so each route states only what is its own.
"""

from __future__ import annotations

from fastapi import APIRouter

from matchwise.api.deps import AdminScope, IngestScope, ReadScope, guarded
from matchwise.schemas import ErrorOut

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No API key or user token, or an invalid, "
          "revoked or expired one"},
    403: {"model": ErrorOut, "description": "The key's scope does not allow this route, or "
          "a user token acts for another user here; the message says which"},
    404: {"model": ErrorOut, "description": "A user or item named in the request is unknown"},
    422: {"model": ErrorOut, "description": "The request is invalid; the message says where"},
    429: {"model": ErrorOut, "description": "Too many invalid keys or tokens from this "
          "address; retry after the Retry-After header's seconds"},
    503: {"model": ErrorOut, "description": "The store is busy or unreachable; retry after "
          "the Retry-After header's seconds"},
}  # fmt: skip
BODY_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    400: {"model": ErrorOut, "description": "The body is not valid JSON; the message says why"},
    409: {"model": ErrorOut, "description": "The write conflicts with one made at the same "
          "time, or with what is stored"},
    413: {"model": ErrorOut, "description": "The body is over 16 MB, or a batch is over "
          "max_batch_size"},
}  # fmt: skip

OpenRoute = guarded(None)
IngestRoute = guarded("ingest")
ReadRoute = guarded("read")
AdminRoute = guarded("admin")


def open_router() -> APIRouter:
    """Routes anyone may call, without a key."""
    return APIRouter(route_class=OpenRoute)


def ingest_router() -> APIRouter:
    """Writes: an ingest key (or a user token, on routes marked ``USER_TOKENS``)."""
    return APIRouter(dependencies=[IngestScope], responses=BODY_ERRORS, tags=["ingest"],
                     route_class=IngestRoute)  # fmt: skip


def read_router() -> APIRouter:
    """Reads: a read key (or a user token, on routes marked ``USER_TOKENS``)."""
    return APIRouter(dependencies=[ReadScope], responses=ERRORS, tags=["serve"],
                     route_class=ReadRoute)  # fmt: skip


def admin_router() -> APIRouter:
    """Operators' routes: an admin key, never a user token."""
    return APIRouter(dependencies=[AdminScope], responses=BODY_ERRORS, tags=["admin"],
                     route_class=AdminRoute)  # fmt: skip
