"""Personalisation metrics for operators: what was shown, clicked and converted."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from matchwise.api.deps import StoreDep
from matchwise.api.routes.scopes import admin_router
from matchwise.ops import analytics
from matchwise.schemas import MetricsOut

admin = admin_router()


@admin.get("/v1/admin/metrics", response_model=MetricsOut)
async def get_metrics(
    store: StoreDep,
    days: Annotated[
        int, Query(ge=1, le=3650, description="The last this many days, counted back from now")
    ] = 30,
) -> MetricsOut:
    """Impressions, clicks, CTR and conversion per day and per model version/route."""
    return MetricsOut(**await store.read(analytics.personalization_metrics, days))
