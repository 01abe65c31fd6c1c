"""The operator's keys under attack, on both stores: a revoked key stops within a second,
bad keys are rate-limited per address without slowing good ones, and a flood of unknown
keys cannot evict a valid one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from matchwise.api import create_app
from matchwise.auth import create_key, revoke_key
from matchwise.ingest import upsert_users
from matchwise.runtime import Runtime
from tests.utils.factories import people_fixture

RECS = "/v1/recommendations?user_id="


@pytest.fixture
def keys(runtime: Runtime) -> dict[str, str]:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        return {
            scope: create_key(s, scope, name="tests")[0] for scope in ("ingest", "read", "admin")
        }


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class KeyLookups:
    """Counts the queries of ``api_keys`` on the read engine (where keys are checked)."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.read_engine
        self.count = 0

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement:
            self.count += 1

    def __enter__(self) -> KeyLookups:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_a_revoked_key_is_refused_within_a_second(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    with runtime.session() as s:
        key, row = create_key(s, "read")
    assert client.get(RECS + "alice", headers=bearer(key)).status_code == 200  # now cached
    with runtime.session() as s:  # as `matchwise keys revoke` does, from another process
        revoke_key(s, row.id)
    deadline = time.monotonic() + 5  # generous: the promise is one second
    while (answer := client.get(RECS + "alice", headers=bearer(key))).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key still works after 5 s"
        time.sleep(0.05)
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]


def test_bad_keys_from_one_address_get_429_while_good_keys_pass(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    good = bearer(keys["read"])
    assert client.get(RECS + "alice", headers=good).status_code == 200
    statuses = [
        client.get(RECS + "alice", headers=bearer(f"mw_guess_{n}")).status_code for n in range(60)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert set(statuses) == {401, 429} and statuses.index(429) <= 50
    refused = client.get(RECS + "alice", headers=bearer("mw_one_more_guess"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "too many invalid" in refused.json()["message"]

    assert client.get(RECS + "alice", headers=good).status_code == 200  # the same address
    client.app.state.key_cache.ttl = 0  # every key checked in the store again, yet:
    assert client.get(RECS + "alice", headers=good).status_code == 200
    with KeyLookups(runtime) as lookups:  # a limited address's guesses cost no query
        assert client.get(RECS + "alice", headers=bearer("mw_guess_x")).status_code == 429
    assert lookups.count == 0

    other = TestClient(client.app, raise_server_exceptions=False, client=("203.0.113.7", 1))
    assert other.get(RECS + "alice", headers=bearer("mw_guess_y")).status_code == 401


def test_a_flood_of_unknown_keys_does_not_evict_a_valid_one(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    cache = client.app.state.key_cache
    cache.ttl = 600  # long enough that only an eviction could send the key to the store
    good = bearer(keys["read"])
    assert client.get(RECS + "alice", headers=good).status_code == 200
    for n in range(10_001):
        assert cache.scope_of(runtime.read_session, f"mw_flood_{n}") is None
    with KeyLookups(runtime) as lookups:
        assert client.get(RECS + "alice", headers=good).status_code == 200
    assert lookups.count == 0, "the valid key was evicted and looked up again"
