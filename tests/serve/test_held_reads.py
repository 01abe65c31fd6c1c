"""The cached read's held connections (``db.engine.HeldReads``, PostgreSQL): one round trip
a read, so no read leaves a transaction open on its connection, and a connection the
server dropped (a restart, an idle-connection killer) is replaced at once: the read is
still answered from the cache, not with a 503."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from tests.utils.factories import items_fixture, people_fixture

OTHERS = "datname = current_database() AND pid <> pg_backend_pid()"


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "read", name="tests")
    refresh_users(runtime, ["alice"], top_n=5, kind="item")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["X-API-Key"] = key
    return client


def _ready(client: TestClient) -> TestClient:
    """The client once the server says ready (as a load balancer waits): the warm-up's own
    reads and connections are over, so what the test counts is the cached reads'."""
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)
    return client


def _cached(client: TestClient) -> list[str]:
    response = client.get("/v1/recommendations", params={"user_id": "alice", "kind": "item"})
    assert response.status_code == 200, response.text
    assert response.json()["route"] == "cache"
    return [r["candidate_id"] for r in response.json()["recommendations"]]


def _sql(runtime: Runtime, statement: str) -> list:
    with runtime.engine.connect() as conn:
        return list(conn.exec_driver_sql(statement))


def test_a_cached_read_leaves_no_transaction_open(pg_runtime: Runtime) -> None:
    with _client(pg_runtime) as client:
        _ready(client)
        for _ in range(3):
            assert _cached(client)
        open_ = _sql(pg_runtime, f"SELECT count(*) FROM pg_stat_activity WHERE {OTHERS} "
                                 "AND state LIKE 'idle in transaction%%'")  # fmt: skip
    assert open_[0][0] == 0


def test_a_cached_read_survives_the_server_dropping_its_connection(
    pg_runtime: Runtime,
) -> None:
    with _client(pg_runtime) as client:
        before = _cached(client)
        killed = _sql(pg_runtime, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  f"WHERE {OTHERS}")  # fmt: skip
        assert killed  # the held connection among them
        assert _cached(client) == before
        assert _cached(client) == before
