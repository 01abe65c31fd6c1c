"""An API key's verdict lapses every KEY_RECHECK_SECONDS. The server re-reads every key
before that (tests/api/test_key_refresh.py); when that re-read is late, the request
re-checks, single-flight: while one request asks the store, the key's other requests keep
the verdict that lapsed moments ago instead of all sending the same query, and a
revocation still acts as soon as that one re-check answers. These tests pause the
re-read. Both stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matchwise.ops.auth import MISS, create_key, revoke_key
from matchwise.runtime import Runtime
from tests.utils.held_statements import HeldStatements
from tests.utils.moderation import people_client

RECS = "/v1/recommendations?user_id=alice"


def held_key_queries(runtime: Runtime) -> HeldStatements:
    """The queries of one key in ``api_keys`` (a request's re-check, not the background
    re-read), each held until released: a re-check that is slow to answer."""
    return HeldStatements(runtime.read_engine, lambda statement: "api_keys.key_hash =" in statement,
                          hold_seconds=3)  # fmt: skip


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
    with held_key_queries(runtime) as queries, ThreadPoolExecutor(9) as pool:
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
