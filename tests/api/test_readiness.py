"""``/readyz`` (issue 21 item 3): 503 while the process warms up (models, indexes, item
and people catalogues, stored bio vectors), 200 after; ``/healthz`` stays liveness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from matchwise.api import create_app
from matchwise.ingest.profiles import store_users, upsert_items
from matchwise.jobs.worker import Worker
from matchwise.runtime import Runtime
from matchwise.serve.readiness import start_warm_up, warm
from matchwise.serve.state import reset_serving_state, serving_state
from tests.utils.factories import items_fixture, person


def _seed(runtime: Runtime) -> None:
    with runtime.session() as s:
        store_users(s, runtime.settings, [
            person("alice", bio="Hiking in the mountains."),
            person("bob", gender="man", seeking=["woman"], age=32, bio="Mountain trails."),
        ])  # fmt: skip
        upsert_items(s, items_fixture())
    Worker(runtime).run(until_idle=True)  # the bio vectors


def test_readyz_is_503_until_the_warm_up_has_run_and_200_after(runtime: Runtime) -> None:
    _seed(runtime)
    people = runtime.settings.model_copy(update={"domain": "people"})
    runtime = Runtime.open(people, migrate=False)
    try:
        client = TestClient(create_app(runtime=runtime))  # no lifespan: no warm-up yet
        warming = client.get("/readyz")
        assert warming.status_code == 503 and warming.json()["status"] == "warming"
        assert client.get("/healthz").status_code == 200  # alive all the same
        assert serving_state(runtime)._people is None
        warm(runtime)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready" and body["items"] == 4
        assert body["people"] == 2 and body["bio_vectors"] == 2
        assert serving_state(runtime)._people is not None  # loaded before "ready"
    finally:
        runtime.close()


def test_the_server_warms_up_in_the_background_and_then_reports_ready(
    runtime: Runtime, tmp_path: Path
) -> None:
    _seed(runtime)
    reset_serving_state(runtime)  # a fresh process
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["items"] == 4
        assert serving_state(runtime)._catalogue is not None


def test_readyz_is_documented_in_openapi(runtime: Runtime) -> None:
    schema = TestClient(create_app(runtime=runtime)).get("/openapi.json").json()
    answers = schema["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(answers)


@pytest.mark.postgres
def test_a_closed_runtime_leaves_no_connection_behind_its_warm_up(pg_runtime: Runtime) -> None:
    """A server stopped while it still warms up: closing its runtime waits for the warm-up,
    which opens nothing more, so no PostgreSQL session outlives the runtime (a warm-up left
    running connected the read pool afresh after the disposal: eight sessions a start that
    nobody closed, until a test suite ran the server out of connections)."""
    _seed(pg_runtime)
    count = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND pid <> pg_backend_pid()")  # fmt: skip
    observer = create_engine(pg_runtime.settings.database_url, poolclass=NullPool)
    try:
        with observer.connect() as c:
            before = c.scalar(count)
        for _ in range(3):
            runtime = Runtime.open(pg_runtime.settings, migrate=False)
            start_warm_up(runtime)
            runtime.close()
        time.sleep(1.0)  # what a leftover warm-up would open, it opens by now
        with observer.connect() as c:
            assert c.scalar(count) <= before
    finally:
        observer.dispose()
