"""A DB-backed job queue.

On PostgreSQL several workers claim jobs with ``SELECT … FOR UPDATE SKIP LOCKED``; on
SQLite one worker at a time (the claim is still a compare-and-set, so a second worker
is harmless). A claimed job holds a lease that its worker extends while it runs; a job
whose worker died is claimed again once the lease expires. Failures are recorded and
retried with exponential backoff up to ``max_attempts``. Enqueue with a ``dedupe_key``
is idempotent: no second job while one with that key is queued or running.

Job types are functions registered with :func:`job_type`; applications can add their
own by listing modules in ``MATCHWISE_JOB_PLUGINS`` (imported by the worker).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from matchwise.db.tables import Job, utcnow
from matchwise.errors import Conflict, InvalidInput
from matchwise.registry import active_version

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class LeaseLost(Conflict):
    """This attempt no longer holds its job: its lease expired and another worker took it."""


# --- queue operations -----------------------------------------------------------------


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int = 3,
) -> tuple[Job, bool]:
    """Queue a job; returns ``(job, created)``. With ``dedupe_key``, an open job with the
    same key is returned instead of a second one (race-safe through a unique index)."""
    if not kind or len(kind) > 50:
        raise InvalidInput("job type must be 1-50 characters")
    if dedupe_key:
        existing = _open_with_key(session, dedupe_key)
        if existing is not None:
            return existing, False
    job = Job(
        job_type=kind,
        payload=payload or {},
        dedupe_key=dedupe_key,
        status=QUEUED,
        max_attempts=max_attempts,
        run_after=run_after or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = _open_with_key(session, dedupe_key or "")
        if existing is None:
            raise
        return existing, False
    return job, True


def _open_with_key(session: Session, key: str) -> Job | None:
    return session.scalar(
        select(Job).where(Job.dedupe_key == key, Job.status.in_([QUEUED, RUNNING])).limit(1)
    )


def claim(
    session: Session,
    worker_id: str,
    lease_seconds: float = 60.0,
    kinds: list[str] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Take the oldest runnable job: queued and due, or running with an expired lease."""
    now = now or utcnow()
    runnable = or_(
        and_(Job.status == QUEUED, Job.run_after <= now),
        and_(Job.status == RUNNING, Job.lease_expires_at < now),
    )
    stmt = select(Job.id).where(runnable).order_by(Job.run_after, Job.id).limit(1)
    if kinds:
        stmt = stmt.where(Job.job_type.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job_id = session.scalar(stmt)
    if job_id is None:
        return None
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, runnable)
        .values(
            status=RUNNING,
            locked_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job.id)
    ).first()
    if claimed is None:  # another worker won the compare-and-set
        return None
    session.flush()
    job = session.get(Job, job_id, populate_existing=True)
    return job


def extend_lease(session: Session, job_id: int, worker_id: str, lease_seconds: float) -> bool:
    """Heartbeat; False if the job is no longer ours (lease lost to another worker)."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .returning(Job.id)
    ).first()
    return row is not None


def complete(session: Session, job_id: int, worker_id: str, result: dict[str, Any] | None) -> bool:
    """Mark done, only if this worker still holds the job."""
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == RUNNING)
        .values(status=DONE, result=result or {}, finished_at=now, updated_at=now)
        .returning(Job.id)
    ).first()
    return row is not None


def fail(
    session: Session,
    job_id: int,
    worker_id: str,
    error: str,
    backoff_seconds: float = 30.0,
) -> str | None:
    """Record the error; retry later with exponential backoff, or fail for good."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.locked_by != worker_id or job.status != RUNNING:
        return None
    now = utcnow()
    job.last_error = error[-4000:]
    job.updated_at = now
    if job.attempts >= job.max_attempts:
        job.status = FAILED
        job.finished_at = now
    else:
        job.status = QUEUED
        job.run_after = now + timedelta(seconds=backoff_seconds * 2 ** (job.attempts - 1))
        job.locked_by = None
        job.lease_expires_at = None
    return job.status


def maybe_enqueue_refresh(
    session: Session, settings: Any, user_id: str, action: str, now: datetime | None = None
) -> bool:
    """Seed 004's real-time refresh: after a meaningful interaction, queue a refresh of the
    actor's cached list, at most once per ``realtime_refresh_min_interval_seconds``."""
    if not (settings.task_queue_enabled and settings.realtime_refresh_enabled):
        return False
    rule = settings.action_table.get(action)
    if rule is None or not rule.meaningful:
        return False
    now = now or utcnow()
    key = f"refresh_user:{user_id}"
    since = now - timedelta(seconds=settings.realtime_refresh_min_interval_seconds)
    recent = session.scalar(
        select(Job.id).where(Job.dedupe_key == key, Job.created_at >= since).limit(1)
    )
    if recent is not None:
        return False
    _, created = enqueue(
        session, "refresh_user", {"user_id": user_id, "top_n": settings.default_top_n},
        dedupe_key=key,
    )  # fmt: skip
    return created


SCAN_CHUNK = 10_000  # profiles per safety_scan job


def maybe_enqueue_safety_scan(session: Session, settings: Any, user_ids: list[str]) -> bool:
    """Queue safety scans of new or changed profiles (every path that writes profiles:
    the API, imports, generated data) when a safety model is active; one job per 10,000."""
    if not settings.task_queue_enabled or not user_ids or active_version(session, "safety") is None:
        return False
    ids = sorted(set(user_ids))
    for start in range(0, len(ids), SCAN_CHUNK):
        enqueue(session, "safety_scan", {"user_ids": ids[start : start + SCAN_CHUNK]})
    return True


def schedule_due(
    session: Session,
    kind: str,
    every: timedelta,
    first_after: datetime,
    now: datetime | None = None,
) -> bool:
    """Queue a periodic ``kind`` job when it is due: the last one was created ``every``
    ago or more, or none ever was and ``first_after`` has passed (a worker's start plus a
    grace). Idempotent like :func:`enqueue` (dedupe key ``kind``): several workers queue one."""
    now = now or utcnow()
    last = session.scalar(select(func.max(Job.created_at)).where(Job.job_type == kind))
    due = now >= first_after if last is None else now - last >= every
    if not due:
        return False
    _, created = enqueue(session, kind, {}, dedupe_key=kind)
    return created


def list_jobs(session: Session, status: str | None = None, limit: int = 50) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == status)
    return list(session.scalars(stmt))
