"""Routes, one module per resource: validate, call one service function, return. No
logic of their own.

Writes go through :meth:`Store.write`, which commits before the route answers; reads
through :meth:`Store.read` or, for cached recommendations, straight to the caches.

:data:`ROUTERS` is what :func:`matchwise.api.app.create_app` includes, in the order of
the OpenAPI document's paths (the open route, then the ingest, read and admin ones):
keep that order when adding a router.
"""

from __future__ import annotations

from fastapi import APIRouter

from matchwise.api.routes import (
    events,
    experiments,
    health,
    items,
    metrics,
    moderation,
    monitoring,
    recommendations,
    safety,
    tokens,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    users.ingest,
    items.ingest,
    events.ingest,
    moderation.ingest,
    tokens.ingest,
    recommendations.read,
    users.read,
    items.read,
    safety.read,
    moderation.admin,
    metrics.admin,
    monitoring.admin,
    safety.admin,
    users.admin,
    experiments.admin,
)

__all__ = ["ROUTERS"]
