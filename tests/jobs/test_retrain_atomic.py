"""A retrain job killed part-way leaves no model versions behind; its retry registers once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from matchwise import registry
from matchwise.data.synthetic import generate_items
from matchwise.db.tables import AuditLog, Job
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.handlers import retrain
from matchwise.jobs.queue import LeaseLost, claim, enqueue
from matchwise.jobs.worker import JobContext, wait_for
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.pipeline import reports_folder

ROOT = Path(__file__).resolve().parents[2]
FAST, SLOW = "popularity", "two_tower"  # ~0.1 s and several seconds to train


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=150, n_items=120, n_interactions=6000, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    yield runtime
    runtime.close()


def _spawn_worker(runtime: Runtime) -> subprocess.Popen[bytes]:
    """``matchwise worker`` in a process of its own, on the test's store and artifacts."""
    env = dict(os.environ)
    env.update(
        MATCHWISE_DATABASE_URL=runtime.settings.database_url,
        MATCHWISE_ARTIFACT_ROOT=runtime.settings.artifact_root,
        PYTHONPATH=str(ROOT),
    )
    env.pop("MATCHWISE_CONFIG", None)
    command = [sys.executable, "-m", "matchwise", "worker", "--lease-seconds", "1.5",
               "--poll-seconds", "0.2"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def _stderr(process: subprocess.Popen[bytes]) -> str:
    """What a worker said before it stopped (or was stopped), for a failure's message."""
    process.kill()
    _, err = process.communicate(timeout=30)
    return err.decode(errors="replace")[-3000:]


def _job(runtime: Runtime, job_id: int) -> Job:
    with runtime.session() as s:
        job = s.get(Job, job_id, populate_existing=True)
        assert job is not None
        return job


def _versions(runtime: Runtime) -> list[registry.ModelVersion]:
    with runtime.session() as s:
        return registry.list_versions(s)


def _first_model_trained(runtime: Runtime) -> bool:
    """True once the fast model is trained: its version is registered (what a retrain did
    before registering at its end), or its report has been written for a while (the slow
    model is training then, with nothing registered yet)."""
    if any(v.model_type == FAST for v in _versions(runtime)):
        return True
    reports = list(reports_folder(runtime.settings.artifact_root).glob(f"{FAST}-*.json"))
    return any(time.time() - p.stat().st_mtime > 1.0 for p in reports)


def test_killed_retrain_registers_nothing_and_its_retry_registers_once(store: Runtime) -> None:
    with store.session() as s:
        job, _ = enqueue(s, "retrain", {"models": [FAST, SLOW], "domain": "items",
                                             "refresh": False}, dedupe_key="retrain")  # fmt: skip
    first = _spawn_worker(store)
    try:
        running = wait_for(lambda: _job(store, job.id).status == "running", timeout=60)
        assert running, _stderr(first)
        killed = _job(store, job.id).locked_by
        assert wait_for(lambda: _first_model_trained(store), timeout=120)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    assert _job(store, job.id).status == "running"  # killed part-way, not after the job

    second = _spawn_worker(store)
    try:
        finished = wait_for(lambda: _job(store, job.id).status == "done", timeout=180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    done = _job(store, job.id)
    assert finished, (done.status, done.last_error)
    assert done.attempts == 2 and done.locked_by != killed
    versions = _versions(store)
    assert Counter(v.model_type for v in versions) == {FAST: 1, SLOW: 1}
    assert {v.version for v in versions} == {done.result[FAST]["version"],
                                             done.result[SLOW]["version"]}  # fmt: skip
    assert all(v.is_active for v in versions)
    with store.session() as s:
        registered = s.scalars(select(AuditLog).where(AuditLog.action == "model.register")).all()
    assert {e.actor for e in registered} == {f"worker:{done.locked_by}"}


def test_attempt_that_lost_its_lease_commits_nothing(store: Runtime) -> None:
    with store.session() as s:
        job, _ = enqueue(s, "retrain", {"models": [FAST, "ease"], "domain": "items"})
        taken = claim(s, "new-holder", kinds=["retrain"])  # the lease went to another worker
        assert taken is not None and taken.id == job.id
    ctx = JobContext(store, job.id, dict(job.payload), attempt=1, worker_id="old-holder")
    with pytest.raises(LeaseLost):
        retrain(ctx)
    assert _versions(store) == []
    assert not list((Path(store.settings.artifact_root) / "models").glob("*/*"))  # removed
    with store.session() as s:
        queued = (
            select(func.count())
            .select_from(Job)
            .where(  # the profiles' embed_bios aside
                Job.id != job.id, Job.job_type != "embed_bios"
            )
        )
        assert s.scalar(queued) == 0
    assert _job(store, job.id).status == "running"  # the new holder's to finish
