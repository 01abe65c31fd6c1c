"""The worker: claims jobs from the queue, runs their handlers, keeps their leases."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from matchwise.db.tables import Job, utcnow
from matchwise.errors import InvalidInput
from matchwise.jobs.queue import (
    LeaseLost,
    claim,
    complete,
    extend_lease,
    fail,
    schedule_due,
)
from matchwise.runtime import Runtime

log = logging.getLogger(__name__)
SCHEDULE_CHECK_SECONDS = 60.0  # how often a running worker looks for periodic jobs due


@dataclass
class JobContext:
    """What a handler gets: the runtime, the job's id, payload and attempt number."""

    runtime: Runtime
    job_id: int
    payload: dict[str, Any]
    attempt: int
    worker_id: str
    finished: bool = False  # the handler marked the job done itself (complete_in)

    def complete_in(self, session: Session, result: dict[str, Any]) -> None:
        """Mark the job done inside the handler's own transaction, so its effects and its
        completion commit together or not at all; raises LeaseLost (rolling them back) when
        another worker holds the job now."""
        if not complete(session, self.job_id, self.worker_id, result):
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} lost its lease")
        self.finished = True


Handler = Callable[[JobContext], dict[str, Any] | None]
_JOB_TYPE = "matchwise_job_type"


def job_type(name: str) -> Callable[[Handler], Handler]:
    """Mark a function as the handler of jobs of type ``name`` (found by
    :func:`load_handlers` in the modules it imports)."""

    def mark(fn: Handler) -> Handler:
        setattr(fn, _JOB_TYPE, name)
        return fn

    return mark


def load_handlers() -> dict[str, Handler]:
    """The built-in job types and those of the modules named in ``MATCHWISE_JOB_PLUGINS``
    (comma-separated), by job type."""
    plugins = os.environ.get("MATCHWISE_JOB_PLUGINS", "").split(",")
    names = ["matchwise.jobs.handlers", *filter(None, (n.strip() for n in plugins))]
    found: dict[str, Handler] = {}
    for name in names:
        for value in vars(importlib.import_module(name)).values():
            kind = getattr(value, _JOB_TYPE, None)
            if isinstance(kind, str) and callable(value):
                found[kind] = value
    return found


# --- the worker -----------------------------------------------------------------------


@dataclass
class Worker:
    """Claims and runs jobs until stopped; extends its lease from a heartbeat thread."""

    runtime: Runtime
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    backoff_seconds: float = 30.0
    kinds: list[str] | None = None
    #: periodic jobs this worker queues when due, hours apart; default from the settings
    #: (``monitoring.interval_hours``); 0 turns one off
    schedules: dict[str, float] | None = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.handlers = load_handlers()
        if self.schedules is None:
            self.schedules = {"monitoring": self.runtime.settings.monitoring.interval_hours}
        self._started = utcnow()
        self._next_schedule_check = 0.0

    def schedule(self, now: datetime | None = None) -> list[str]:
        """Queue the periodic jobs that are due (see :func:`schedule_due`: the first one an
        interval, at most an hour, after this worker started); returns their kinds."""
        queued = []
        for kind, hours in (self.schedules or {}).items():
            if hours <= 0 or kind not in self.handlers or (self.kinds and kind not in self.kinds):
                continue
            every = timedelta(hours=hours)
            first = self._started + min(every, timedelta(hours=1))
            try:
                with self.runtime.session() as session:
                    if schedule_due(session, kind, every, first, now):
                        queued.append(kind)
            except Exception:  # a missed check only delays the job to the next one
                log.exception("could not queue the periodic %s job", kind)
        return queued

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> Job | None:
        """Claim and run at most one job; returns it (reloaded) or None when idle."""
        with self.runtime.session() as session:
            job = claim(session, self.worker_id, self.lease_seconds, self.kinds)
            if job is None:
                return None
            job_id, kind, payload, attempt = job.id, job.job_type, dict(job.payload), job.attempts
        log.info("job %s (%s) attempt %s claimed by %s", job_id, kind, attempt, self.worker_id)
        beat = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(job_id, beat), daemon=True)
        heart.start()
        ctx = JobContext(self.runtime, job_id, payload, attempt, self.worker_id)
        try:
            handler = self.handlers.get(kind)
            if handler is None:
                raise InvalidInput(f"no handler for job type {kind!r}")
            result = handler(ctx)
        except Exception as exc:
            beat.set()
            heart.join()
            message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            log.warning("job %s failed: %s", job_id, exc)
            with self.runtime.session() as session:
                fail(session, job_id, self.worker_id, message, self.backoff_seconds)
        else:
            beat.set()
            heart.join()
            if not ctx.finished:
                with self.runtime.session() as session:
                    if not complete(session, job_id, self.worker_id, result):
                        log.warning("job %s finished but its lease was lost", job_id)
        with self.runtime.session() as session:
            return session.get(Job, job_id)

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        interval = max(self.lease_seconds / 3.0, 0.05)
        while not done.wait(interval):
            try:
                with self.runtime.session() as session:
                    if not extend_lease(session, job_id, self.worker_id, self.lease_seconds):
                        return
            except Exception:  # a missed heartbeat only shortens the lease
                log.exception("heartbeat for job %s failed", job_id)

    def run(self, max_jobs: int | None = None, until_idle: bool = False) -> int:
        """Loop until stopped, ``max_jobs`` done, or (``until_idle``) the queue is empty."""
        done = 0
        while not self._stop.is_set() and (max_jobs is None or done < max_jobs):
            if not until_idle and time.monotonic() >= self._next_schedule_check:
                self._next_schedule_check = time.monotonic() + SCHEDULE_CHECK_SECONDS
                self.schedule()
            job = self.run_once()
            if job is None:
                if until_idle:
                    break
                self._stop.wait(self.poll_seconds)
                continue
            done += 1
        return done


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
