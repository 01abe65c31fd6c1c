"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness): the routes without a key,
for load balancers and operators."""

from __future__ import annotations

from fastapi import Response

from matchwise.api.deps import RuntimeDep
from matchwise.api.routes.scopes import open_router
from matchwise.schemas import ReadyOut
from matchwise.serve import state as serving
from matchwise.serve.readiness import readiness

router = open_router()


@router.get("/healthz", tags=["ops"])
def healthz(runtime: RuntimeDep) -> serving.HealthOut:
    """Liveness (200 while the process runs, warming up included), the store's schema
    revision, and the truth about the models: ``degraded`` names active versions that
    failed to load (retried in the background) and what serves instead."""
    return serving.health(runtime)


@router.get(
    "/readyz",
    tags=["ops"],
    responses={503: {"model": ReadyOut, "description": "Warming up: send no traffic yet"}},
)
def readyz(runtime: RuntimeDep, response: Response) -> ReadyOut:
    """Readiness for a load balancer: 503 ``warming`` while the process loads the active
    models, their indexes, the item and people catalogues and the stored bio vectors
    after a start; 200 ``ready`` once the first request costs what the hundredth does."""
    ready = readiness(runtime)
    if ready.status != "ready":
        response.status_code = 503
    return ready
