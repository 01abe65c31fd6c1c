"""An API key's verdict lapses every KEY_RECHECK_SECONDS. The server re-reads every key
before that (tests/api/test_key_refresh.py); when that re-read is late, the request
re-checks, single-flight: while one request asks the store, the key's other requests keep
the verdict that lapsed moments ago instead of all sending the same query, and a
revocation still acts as soon as that one re-check answers. These tests pause the
re-read. Both stores."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from matchwise.ops.auth import MISS, create_key, revoke_key
from matchwise.runtime import Runtime
from tests.utils.moderation import people_client

RECS = "/v1/recommendations?user_id=alice"


class HeldKeyQueries:
    """Counts the queries of one key in ``api_keys`` on the read engine and holds each
    one until :meth:`release` (the query itself runs for real): a re-check that is slow
    to answer."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.read_engine
        self.count = 0
        self.started = threading.Event()
        self.released = threading.Event()

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys.key_hash =" in statement:  # a request's re-check, not the re-read
            self.count += 1
            self.started.set()
            self.released.wait(timeout=3)

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> HeldKeyQueries:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with people_client(runtime) as c:
        yield c


def test_one_recheck_per_key_while_its_other_requests_keep_the_verdict(
    runtime: Runtime, client: TestClient
) -> None:
    with runtime.session() as s:
        key, row = create_key(s, "read")
    headers = {"X-API-Key": key}
    cache = client.app.state.key_cache  # type: ignore[attr-defined]
    cache.ttl = 0.2
    cache.pause_refresh()
    cache.clear()  # what the re-read held, trusted for the default second
    assert client.get(RECS, headers=headers).status_code == 200  # verified and remembered
    with runtime.session() as s:  # revoked elsewhere; this process learns at the re-check
        revoke_key(s, row.id)
    time.sleep(0.3)  # the verdict has lapsed
    with HeldKeyQueries(runtime) as queries, ThreadPoolExecutor(9) as pool:
        first = pool.submit(client.get, RECS, headers=headers)  # re-checks, held
        assert queries.started.wait(timeout=10)
        # eight more requests while the re-check is under way: without single-flight each
        # sends the same query (and waits behind the held one)
        others = [pool.submit(client.get, RECS, headers=headers) for _ in range(8)]
        statuses = [f.result(timeout=30).status_code for f in others]
        queries.release()
        refused = first.result(timeout=30)
    assert queries.count == 1, f"{queries.count} re-check queries for one key"
    assert statuses == [200] * 8  # the verdict of moments ago, within the documented bound
    # the re-check found the revocation: it and every later request are refused
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert client.get(RECS, headers=headers).status_code == 401


def test_a_recheck_that_fails_is_not_left_under_way(runtime: Runtime, client: TestClient) -> None:
    """A re-check that raised does not leave the key's other requests on the old verdict:
    the next request re-checks again."""
    with runtime.session() as s:
        key, row = create_key(s, "read")
    cache = client.app.state.key_cache  # type: ignore[attr-defined]
    cache.ttl = 0.05
    cache.pause_refresh()
    cache.clear()
    assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
    time.sleep(0.1)

    def broken() -> Any:
        raise ConnectionError("the store is away")

    assert cache.cached(key) is MISS  # this caller re-checks
    with pytest.raises(ConnectionError):
        cache.scope_of(broken, key)
    with runtime.session() as s:
        revoke_key(s, row.id)
    answer = client.get(RECS, headers={"X-API-Key": key})
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]
