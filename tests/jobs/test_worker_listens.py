"""A running worker hears activations as the API servers do (issue 21 item 4): the
refresh jobs it runs after an activation's commit use the newly active version, though it
polls the registry only once an hour here, so polling alone cannot pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from matchwise import registry
from matchwise.db.tables import Job, Recommendation
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import wait_for
from matchwise.runtime import Runtime
from tests.utils.versions import two_ease_versions

ROOT = Path(__file__).resolve().parents[2]


def _worker(runtime: Runtime) -> subprocess.Popen[bytes]:
    env = {**os.environ,
           "MATCHWISE_DATABASE_URL": runtime.settings.database_url,
           "MATCHWISE_ARTIFACT_ROOT": runtime.settings.artifact_root,
           "MATCHWISE_REGISTRY_CHECK_SECONDS": "3600"}  # fmt: skip
    env.pop("MATCHWISE_CONFIG", None)
    env.pop("MATCHWISE_REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "matchwise", "worker", "--poll-seconds", "0.2"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def _refreshed_with(runtime: Runtime, user_id: str) -> str:
    """Queue a refresh of ``user_id``'s item list, wait for the worker to run it, and
    return the model version the list was made with."""
    with runtime.session() as s:
        job, _ = enqueue(s, "refresh_user", {"user_id": user_id})

    def done() -> bool:
        with runtime.read_session() as s:
            return s.scalar(select(Job.status).where(Job.id == job.id)) == "done"

    assert wait_for(done, timeout=180), "the worker did not run the refresh"
    with runtime.read_session() as s:
        mine = (Recommendation.user_id == user_id) & (Recommendation.candidate_kind == "item")
        versions = set(s.scalars(select(Recommendation.model_version).where(mine)))
    assert len(versions) == 1
    return versions.pop()


@pytest.mark.postgres
def test_a_worker_refreshes_with_the_version_activated_after_it_started(
    pg_runtime: Runtime,
) -> None:
    runtime = pg_runtime
    bundle, old, new = two_ease_versions(runtime)
    user = str(bundle.interactions["user_id"].value_counts().index[0])  # a warm user
    worker = _worker(runtime)
    try:
        assert _refreshed_with(runtime, user) == old.version
        with runtime.session() as s:
            registry.activate_version(s, registry.ArtifactStore(runtime.settings.artifact_root),
                                      new.version, actor="test")  # fmt: skip
        # the notice arrives at the commit and the new version loads in the background
        # (the old one serves meanwhile): within seconds, where polling would take an hour
        assert wait_for(lambda: _refreshed_with(runtime, user) == new.version, timeout=20,
                        interval=0.5)  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
