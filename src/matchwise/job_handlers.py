"""Built-in job types: retrain, refresh_user, retention."""

from __future__ import annotations

from typing import Any

from matchwise.jobs import JobContext, job_type


@job_type("refresh_user")
def refresh_user(ctx: JobContext) -> dict[str, Any]:
    """Recompute one user's cached recommendations with the active models."""
    from matchwise.refresh import refresh_users

    user_id = ctx.payload.get("user_id")
    top_n = int(ctx.payload.get("top_n", ctx.runtime.settings.default_top_n))
    return refresh_users(ctx.runtime, [user_id] if user_id else None, top_n=top_n)


@job_type("retention")
def retention(ctx: JobContext) -> dict[str, Any]:
    """Delete raw events older than ``retention_days``, keeping daily aggregates."""
    from matchwise.privacy import apply_retention

    days = int(ctx.payload.get("retention_days", ctx.runtime.settings.retention_days))
    return apply_retention(ctx.runtime.session, retention_days=days)


@job_type("retrain")
def retrain(ctx: JobContext) -> dict[str, Any]:
    """Dataset → train → evaluate → register → activate if better; then refresh the cache."""
    from matchwise.refresh import refresh_users
    from matchwise.training import retrain as retrain_models

    outcome, activated = retrain_models(ctx.runtime, ctx.payload.get("models"),
                                        domain=ctx.payload.get("domain"),
                                        actor=f"worker:{ctx.worker_id}",
                                        ray=bool(ctx.payload.get("ray")))  # fmt: skip
    if activated and ctx.payload.get("refresh", True):
        top_n = int(ctx.payload.get("top_n", 50))
        outcome["refresh"] = refresh_users(ctx.runtime, None, top_n=top_n)
    return outcome


@job_type("safety_scan")
def safety_scan(ctx: JobContext) -> dict[str, Any]:
    """Classify profiles with the active safety model; hold flagged ones for review."""
    from matchwise.safety_service import scan_profiles

    return scan_profiles(ctx.runtime, ctx.payload.get("user_ids"))
