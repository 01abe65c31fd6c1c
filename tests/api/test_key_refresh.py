"""API keys' verdicts are re-read in the background (``api.key_refresh``), so no request
waits on the store for its key: not the first after a start, not the first after an
idle spell, not one with a key created after the server started. A revocation still acts
within a second, found by the re-read itself. Both stores."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from matchwise.ops.auth import MISS, KeyCache, create_key, hash_key, revoke_key
from matchwise.runtime import Runtime
from tests.utils.moderation import people_client

RECS = "/v1/recommendations?user_id=alice"
Sessions = Callable[[], AbstractContextManager[Session]]


class CountedRechecks:
    """Counts the per-request re-checks (:meth:`KeyCache.scope_of`), which query the store
    on the request's path; the real method runs."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache
        self.count = 0
        self._real = cache.scope_of

    def _counted(self, session_factory: Sessions, key: str) -> str | None:
        self.count += 1
        return self._real(session_factory, key)

    def __enter__(self) -> CountedRechecks:
        self.cache.scope_of = self._counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.cache.scope_of


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with people_client(runtime) as c:
        yield c


def _refreshed(cache: KeyCache, after: float, timeout: float = 5.0) -> None:
    """Wait until a background re-read that began after ``after`` has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with cache._lock:
            untils = [until for _, until in cache._valid.values()]
        if untils and min(untils) - cache.ttl > after:
            return
        time.sleep(0.02)
    raise AssertionError("no background re-read of the keys within 5 s")


def test_no_request_rechecks_its_key_after_an_idle_spell_or_a_start(
    runtime: Runtime, client: TestClient
) -> None:
    cache: KeyCache = client.app.state.key_cache  # type: ignore[attr-defined]
    with runtime.session() as s:  # created after the server started: found by the re-read
        key, _ = create_key(s, "read")
    _refreshed(cache, time.monotonic())
    with CountedRechecks(cache) as rechecks:
        assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
        time.sleep(cache.ttl * 2.5)  # an idle spell: without the re-read the verdict lapsed
        assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
    assert rechecks.count == 0, f"{rechecks.count} requests queried the store for their key"


def test_a_paused_refresher_leaves_the_recheck_to_requests(
    runtime: Runtime, client: TestClient
) -> None:
    """The control for the test above: with the re-read paused, the same idle spell
    sends the next request to the store."""
    cache: KeyCache = client.app.state.key_cache  # type: ignore[attr-defined]
    cache.pause_refresh()
    with runtime.session() as s:
        key, _ = create_key(s, "read")
    with CountedRechecks(cache) as rechecks:
        assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
        time.sleep(cache.ttl * 1.5)
        assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
    assert rechecks.count == 2


def test_the_rereading_finds_a_revocation_within_a_second(
    runtime: Runtime, client: TestClient
) -> None:
    cache: KeyCache = client.app.state.key_cache  # type: ignore[attr-defined]
    with runtime.session() as s:
        key, row = create_key(s, "read")
    assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
    with runtime.session() as s:  # as `matchwise keys revoke` does, from another process
        revoke_key(s, row.id)
    revoked_at = time.monotonic()
    with CountedRechecks(cache) as rechecks:
        while cache.cached(key) is not None:  # held as "no such key" by the re-read alone
            assert time.monotonic() - revoked_at < cache.ttl + 1, "revocation not seen in time"
            time.sleep(0.02)
        answer = client.get(RECS, headers={"X-API-Key": key})
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]
    assert rechecks.count == 0


# --- KeyCache.refresh on its own ----------------------------------------------------------


def test_refresh_holds_live_keys_and_drops_revoked_ones(runtime: Runtime) -> None:
    with runtime.session() as s:
        kept, _ = create_key(s, "ingest")
        dropped, row = create_key(s, "admin")
    cache = KeyCache()
    assert cache.refresh(runtime.read_session)
    assert cache.cached(kept) == "ingest" and cache.cached(dropped) == "admin"
    with runtime.session() as s:
        revoke_key(s, row.id)
    assert cache.refresh(runtime.read_session)
    assert cache.cached(kept) == "ingest"
    assert cache.cached(dropped) is None and not cache.known(dropped)


def test_a_verdict_checked_after_the_rereads_query_began_is_kept(runtime: Runtime) -> None:
    """A request that re-checked its key while a re-read's query was under way learned
    something newer than the re-read: the re-read does not overwrite it."""
    with runtime.session() as s:
        key, row = create_key(s, "read")
    cache = KeyCache()

    class RevokedDuringTheQuery:
        def __init__(self) -> None:
            self.session = runtime.read_session()

        def __enter__(self) -> Session:
            return self.session.__enter__()

        def __exit__(self, *exc: Any) -> None:
            self.session.__exit__(*exc)
            with runtime.session() as s:  # revoked after the re-read read it as live ...
                revoke_key(s, row.id)
            cache.cached(key)  # ... and a request re-checked it meanwhile
            assert cache.scope_of(runtime.read_session, key) is None

    assert cache.refresh(RevokedDuringTheQuery)
    assert cache.cached(key) is None, "the older re-read brought a revoked key back"


def test_more_live_keys_than_it_holds_leaves_them_to_requests(runtime: Runtime) -> None:
    with runtime.session() as s:
        keys = [create_key(s, "read")[0] for _ in range(3)]
    cache = KeyCache(max_refreshed=2)
    assert not cache.refresh(runtime.read_session)
    assert cache.sizes() == (0, 0)
    assert cache.cached(keys[0]) is MISS  # checked by its request, as without the re-read
    assert cache.scope_of(runtime.read_session, keys[0]) == "read"


def test_a_failing_reread_is_logged_once_and_requests_check_for_themselves(
    runtime: Runtime, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    cache: KeyCache = client.app.state.key_cache  # type: ignore[attr-defined]
    with runtime.session() as s:
        key, _ = create_key(s, "read")
    real = cache.refresh
    failures = 0

    def away(session_factory: Sessions) -> bool:
        nonlocal failures
        failures += 1
        raise OSError("the store is away")

    with caplog.at_level(logging.WARNING, logger="matchwise.api.key_refresh"):
        cache.refresh = away  # type: ignore[method-assign]
        try:
            deadline = time.monotonic() + 5
            while failures < 3:
                assert time.monotonic() < deadline, "the re-read stopped trying"
                time.sleep(0.05)
            with CountedRechecks(cache) as rechecks:
                time.sleep(cache.ttl * 1.2)  # every verdict lapsed meanwhile
                assert client.get(RECS, headers={"X-API-Key": key}).status_code == 200
            assert rechecks.count == 1
        finally:
            cache.refresh = real  # type: ignore[method-assign]
    warnings = [r for r in caplog.records if "could not be re-read" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert hash_key(key) in cache._valid
