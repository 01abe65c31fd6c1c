"""The job queue: idempotent enqueue, retries with backoff, leases that survive SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from matchwise.db.tables import AuditLog, Job, utcnow
from matchwise.jobs.queue import claim, complete, enqueue
from matchwise.jobs.worker import Worker, wait_for
from matchwise.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _test_job_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test job types come as a plugin, as an application's own would."""
    monkeypatch.setenv("MATCHWISE_JOB_PLUGINS", "tests.utils.job_plugin")


def test_enqueue_is_idempotent_while_open(runtime: Runtime) -> None:
    with runtime.session() as s:
        first, created = enqueue(s, "retrain", dedupe_key="retrain")
        again, created_again = enqueue(s, "retrain", dedupe_key="retrain")
    assert created and not created_again and again.id == first.id
    with runtime.session() as s:
        job = claim(s, "w1")
        assert job is not None and job.id == first.id
        _, created_running = enqueue(s, "retrain", dedupe_key="retrain")
        assert not created_running  # running counts as open
        complete(s, job.id, "w1", {})
        _, created_after = enqueue(s, "retrain", dedupe_key="retrain")
        assert created_after  # once done, a new one may be queued


def test_failures_retry_with_backoff_then_fail(runtime: Runtime) -> None:
    with runtime.session() as s:
        job, _ = enqueue(s, "test_fail", max_attempts=3)
    worker = Worker(runtime, backoff_seconds=10)
    first = worker.run_once()
    assert first.status == "queued" and first.attempts == 1
    assert "boom on attempt 1" in first.last_error
    delay = (first.run_after - utcnow()).total_seconds()
    assert 5 < delay <= 10
    assert worker.run_once() is None  # not due yet
    for attempt in (2, 3):
        with runtime.session() as s:
            s.get(Job, job.id).run_after = utcnow() - timedelta(seconds=1)
        done = worker.run_once()
        assert done.attempts == attempt
    assert done.status == "failed" and "boom on attempt 3" in done.last_error


def test_expired_lease_is_reclaimed_but_live_one_is_not(runtime: Runtime) -> None:
    with runtime.session() as s:
        job, _ = enqueue(s, "test_sleep")
    with runtime.session() as s:
        assert claim(s, "dead-worker", lease_seconds=30).id == job.id
    with runtime.session() as s:
        assert claim(s, "other") is None  # lease still valid
        later = utcnow() + timedelta(seconds=31)
        reclaimed = claim(s, "other", now=later)
        assert reclaimed.id == job.id and reclaimed.attempts == 2
    with runtime.session() as s:
        # the dead worker cannot complete a job it no longer holds
        assert not complete(s, job.id, "dead-worker", {})
        assert complete(s, job.id, "other", {})


def _spawn_worker(db_url: str, lease: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        MATCHWISE_DATABASE_URL=db_url,
        MATCHWISE_JOB_PLUGINS="tests.utils.job_plugin",
        PYTHONPATH=str(ROOT),
    )
    env.pop("MATCHWISE_CONFIG", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matchwise",
            "worker",
            "--lease-seconds",
            str(lease),
            "--poll-seconds",
            "0.2",
        ],  # fmt: skip
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_worker_killed_mid_job_is_finished_by_another(runtime: Runtime, db_url: str) -> None:
    with runtime.session() as s:
        job, _ = enqueue(s, "test_sleep", {"seconds": 3})

    def status() -> tuple[str, str | None, int]:
        with runtime.session() as s:
            j = s.get(Job, job.id, populate_existing=True)
            return j.status, j.locked_by, j.attempts

    first = _spawn_worker(db_url, lease=1.5)
    try:
        assert wait_for(lambda: status()[0] == "running", timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    assert status()[0] == "running"  # the dead worker left it claimed
    second = _spawn_worker(db_url, lease=1.5)
    try:
        assert wait_for(lambda: status()[0] == "done", timeout=60), second.stderr
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    final_status, holder, attempts = status()
    assert attempts == 2
    with runtime.session() as s:
        effects = s.scalars(select(AuditLog).where(AuditLog.action == "test.done")).all()
    assert len(effects) == 1 and effects[0].actor == holder


@pytest.mark.postgres
def test_two_workers_never_run_the_same_job_twice(pg_runtime: Runtime) -> None:
    with pg_runtime.session() as s:
        ids = [enqueue(s, "test_record")[0].id for _ in range(40)]
    workers = [Worker(pg_runtime, poll_seconds=0.01) for _ in range(3)]
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with pg_runtime.session() as s:
        runs = Counter(s.scalars(select(AuditLog.target).where(AuditLog.action == "test.run")))
        statuses = {j.status for j in s.scalars(select(Job))}
        workers_used = {a for a in s.scalars(select(AuditLog.actor))}
    assert runs == Counter({f"job-{i}": 1 for i in ids})
    assert statuses == {"done"}
    assert len(workers_used) >= 2


def test_meaningful_interaction_enqueues_a_throttled_refresh(runtime: Runtime) -> None:
    from matchwise.ingest.events import record_interaction
    from matchwise.ingest.profiles import upsert_items, upsert_users
    from matchwise.schemas import InteractionIn
    from tests.utils.factories import items_fixture, people_fixture

    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    settings = runtime.settings

    def interact(action: str, item: str = "e1") -> bool:
        with runtime.session() as s:
            event = InteractionIn(user_id="alice", item_id=item, action=action)
            return record_interaction(s, event, settings).refresh_enqueued

    assert interact("impression") is False  # not meaningful
    assert interact("click") is True
    assert interact("register", "e2") is False  # throttled: one refresh per interval
    worker = Worker(runtime)
    job = worker.run_once()
    assert job.job_type == "refresh_user" and job.status == "done", job.last_error
    assert job.result["rows"] > 0
    assert interact("favorite", "e4") is False  # still inside the interval
    off = settings.model_copy(update={"realtime_refresh_enabled": False})
    with runtime.session() as s:
        event = InteractionIn(user_id="bob", item_id="e1", action="click")
        assert record_interaction(s, event, off).refresh_enqueued is False
