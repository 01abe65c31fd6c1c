"""Monitoring for operators (admin): coverage, freshness, routes, online metrics and drift,
with the flags ``settings.monitoring``'s thresholds raise (``ops.monitoring``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.concurrency import run_in_threadpool

from matchwise.api.deps import RuntimeDep, StoreDep
from matchwise.api.routes.scopes import admin_router
from matchwise.errors import NotFound
from matchwise.ops.monitoring import latest_snapshot, monitoring_report
from matchwise.schemas import MonitoringOut

admin = admin_router()


@admin.get("/v1/admin/monitoring", response_model=MonitoringOut)
async def get_monitoring(
    runtime: RuntimeDep,
    store: StoreDep,
    window_days: Annotated[
        int | None,
        Query(
            ge=1,
            le=3650,
            description="Events of the last this many days count (impressions, online "
            "metrics); default monitoring.window_days (7)",
        ),
    ] = None,
    stored: Annotated[
        bool,
        Query(
            description="The latest snapshot the daily monitoring job kept, instead of one "
            "computed now (404 before the job's first run)"
        ),
    ] = False,
) -> MonitoringOut:
    """Catalogue coverage of served lists, ranking-cache freshness, request and impression
    shares per route, CTR / conversion / match rate per model version, PSI of each feature
    and of the scores against the version's training sample; ``flags`` lists the figures
    past their thresholds. ``routes.requests`` counts this process's answers."""
    if stored:
        snapshot = await store.read(latest_snapshot)
        if snapshot is None:
            raise NotFound("no monitoring snapshot is stored yet: the monitoring job has not "
                           "run (`matchwise jobs enqueue monitoring`, then a worker)")  # fmt: skip
        return MonitoringOut.model_validate(snapshot)
    report = await run_in_threadpool(monitoring_report, runtime, window_days)
    return MonitoringOut.model_validate(report)
