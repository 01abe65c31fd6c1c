"""Built-in job types: retrain, refresh_user, retention, safety_scan, monitoring, embed_bios."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from matchwise.ingest.profiles import EMBED_JOB, embed_profiles
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import JobContext, job_type
from matchwise.ops.monitoring import monitoring_report
from matchwise.ops.privacy import run_retention
from matchwise.ops.safety import scan_profiles
from matchwise.serve.refresh import refresh_users
from matchwise.train.pipeline import TrainResult, train_summary
from matchwise.train.retrain import retrain as retrain_models


@job_type("refresh_user")
def refresh_user(ctx: JobContext) -> dict[str, Any]:
    """Recompute one user's cached recommendations with the active models (every user's
    when the payload names none: what a retrain queues after an activation)."""

    user_id = ctx.payload.get("user_id")
    top_n = int(ctx.payload.get("top_n", ctx.runtime.settings.default_top_n))
    return refresh_users(ctx.runtime, [user_id] if user_id else None, top_n=top_n)


@job_type("retention")
def retention(ctx: JobContext) -> dict[str, Any]:
    """Delete raw events older than ``retention_days``, keeping daily aggregates, and model
    versions older than ``model_retention_days`` (each type's active version and the one a
    rollback returns to stay) with their artifacts."""
    days, model_days = (ctx.payload.get(k) for k in ("retention_days", "model_retention_days"))
    return run_retention(ctx.runtime, days and int(days), model_days and int(model_days))


@job_type("retrain")
def retrain(ctx: JobContext) -> dict[str, Any]:
    """Dataset → train → evaluate every model; then one transaction registers them all,
    activates those that beat the active version, queues a cache refresh when any did
    and marks the job done. An attempt that dies before it leaves nothing behind, and
    one that lost its lease to another worker commits nothing."""
    outcome: dict[str, Any] = {}
    refresh = bool(ctx.payload.get("refresh", True))
    top_n = int(ctx.payload.get("top_n", 50))

    def finish(session: Session, results: list[TrainResult]) -> None:
        outcome.update({result.model_type: train_summary(result) for result in results})
        if refresh and any(result.activated for result in results):
            job, _ = enqueue(session, "refresh_user", {"top_n": top_n})  # every user
            outcome["refresh_job"] = job.id
        ctx.complete_in(session, outcome)

    retrain_models(ctx.runtime, ctx.payload.get("models"), domain=ctx.payload.get("domain"),
                   actor=f"worker:{ctx.worker_id}", ray=bool(ctx.payload.get("ray")),
                   finish=finish)  # fmt: skip
    return outcome


@job_type("safety_scan")
def safety_scan(ctx: JobContext) -> dict[str, Any]:
    """Classify profiles with the active safety model; hold flagged ones for review."""

    return scan_profiles(ctx.runtime, ctx.payload.get("user_ids"))


@job_type("monitoring")
def monitoring(ctx: JobContext) -> dict[str, Any]:
    """Today's monitoring snapshot (coverage, freshness, routes, online metrics, drift and
    flags), kept as the job's result: ``GET /v1/admin/monitoring?stored=true`` and
    ``matchwise monitor --stored`` read the latest. Queued by the worker every
    ``monitoring.interval_hours``."""
    days = ctx.payload.get("window_days")
    return monitoring_report(ctx.runtime, int(days) if days else None)


@job_type(EMBED_JOB)
def embed_bios(ctx: JobContext) -> dict[str, Any]:
    """Store the bio vectors of the profiles a write named (every profile whose vector is
    missing or stale when the payload names none: a backfill), so that serving reads them
    and never embeds inside a request. Queued by every profile write."""
    ids = ctx.payload.get("user_ids")
    return embed_profiles(ctx.runtime, None if ids is None else [str(i) for i in ids])
