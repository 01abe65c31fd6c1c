"""``GET /healthz``: the one route without a key, for load balancers and operators."""

from __future__ import annotations

from matchwise.api.deps import RuntimeDep
from matchwise.api.routes.scopes import open_router
from matchwise.serve import state as serving

router = open_router()


@router.get("/healthz", tags=["ops"])
def healthz(runtime: RuntimeDep) -> serving.HealthOut:
    """Liveness (200 while the process runs), the store's schema revision, and the truth
    about the models: ``degraded`` names active versions that failed to load (retried in
    the background) and what serves instead."""
    return serving.health(runtime)
