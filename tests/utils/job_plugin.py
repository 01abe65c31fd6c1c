"""Job types used by the queue tests, loaded through MATCHWISE_JOB_PLUGINS like any plugin."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from matchwise.db.audit import audit
from matchwise.db.tables import AuditLog
from matchwise.jobs.worker import JobContext, job_type


def _record_once(ctx: JobContext, action: str) -> None:
    """An idempotent effect: one audit row per job, whoever runs it and however often."""
    with ctx.runtime.session() as session:
        target = f"job-{ctx.job_id}"
        seen = session.scalar(
            select(func.count()).where(AuditLog.action == action, AuditLog.target == target)
        )
        if not seen:
            audit(session, ctx.worker_id, action, target, {"attempt": ctx.attempt})


@job_type("test_sleep")
def sleep_then_record(ctx: JobContext) -> dict[str, Any]:
    time.sleep(float(ctx.payload.get("seconds", 1.0)))
    _record_once(ctx, "test.done")
    return {"slept": ctx.payload.get("seconds", 1.0)}


@job_type("test_record")
def record(ctx: JobContext) -> dict[str, Any]:
    with ctx.runtime.session() as session:  # deliberately not idempotent: counts runs
        audit(session, ctx.worker_id, "test.run", f"job-{ctx.job_id}", {})
    time.sleep(0.01)
    return {}


@job_type("test_fail")
def always_fail(ctx: JobContext) -> dict[str, Any]:
    raise RuntimeError(f"boom on attempt {ctx.attempt}")
