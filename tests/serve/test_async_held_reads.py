"""The cached read awaited on the event loop (``db.engine.AsyncHeldReads``, PostgreSQL):
the API's cached path reads there and not through the thread pool; the rows are the
ones the threaded read gives; a dropped connection is replaced and the read answered, a
bad statement is not run twice, and the connections stay read-only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.db.engine import AsyncHeldReads, HeldReads, create_engine_for
from matchwise.errors import StoreUnavailable
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve import tiers
from matchwise.serve.cache import read_cache_awaited, read_cache_from
from matchwise.serve.refresh import refresh_users
from tests.utils.factories import items_fixture, people_fixture

OTHERS = "datname = current_database() AND pid <> pg_backend_pid()"


def _filled(runtime: Runtime) -> str:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "read", name="tests")
    refresh_users(runtime, ["alice", "bob"], top_n=5, kind="item")
    return key


def _terminate_others(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        killed = conn.exec_driver_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {OTHERS}"
        )
        return len(list(killed))


def test_the_api_awaits_the_cached_read_instead_of_using_a_thread(
    pg_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _filled(pg_runtime)

    def threaded(*args: Any) -> None:
        raise AssertionError("the cached read went through the thread pool")

    monkeypatch.setattr(tiers, "read_cache_from", threaded)
    app = create_app(runtime=pg_runtime)
    with TestClient(app) as client:
        for user in ("alice", "bob", "alice"):
            response = client.get(
                "/v1/recommendations",
                params={"user_id": user, "kind": "item"},
                headers={"X-API-Key": key},
            )
            assert response.status_code == 200, response.text
            assert response.json()["route"] == "cache"
            assert response.json()["recommendations"]
        reads = app.state.store_reads
        assert isinstance(reads, AsyncHeldReads)
        assert reads.opened == 1  # one connection, held and reused
    assert app.state.store_reads is None  # closed with the app


def test_the_awaited_read_gives_the_rows_the_threaded_read_gives(pg_runtime: Runtime) -> None:
    _filled(pg_runtime)
    threaded = HeldReads(pg_runtime.read_engine)

    async def both() -> None:
        reads = AsyncHeldReads(pg_runtime.read_engine)
        try:
            for user, limit in (("alice", 5), ("alice", 3), ("bob", 5), ("nobody", 5)):
                awaited = await read_cache_awaited(reads, user, limit, "item", 3600)
                held = read_cache_from(threaded, user, limit, "item", 3600)
                if held is None:
                    assert awaited is None
                    continue
                assert awaited is not None
                assert awaited.recommendations == held.recommendations
                assert (awaited.model_version, awaited.generated_at) == (
                    held.model_version,
                    held.generated_at,
                )
        finally:
            await reads.close()

    asyncio.run(both())
    threaded.close()


def test_a_dropped_connection_is_replaced_and_a_bad_statement_is_not_run_twice(
    pg_runtime: Runtime,
) -> None:
    async def scenario() -> None:
        reads = AsyncHeldReads(pg_runtime.read_engine)
        try:
            assert await reads.rows("SELECT 1", ()) == [(1,)]
            assert _terminate_others(pg_runtime) >= 1  # the held connection among them
            assert await reads.rows("SELECT 2", ()) == [(2,)]
            assert reads.opened == 2  # the dead one replaced once
            with pytest.raises(StoreUnavailable):
                await reads.rows("SELECT 1 / 0", ())
            assert reads.opened == 2  # not run again on a fresh connection
            with pytest.raises(StoreUnavailable, match="read-only"):
                await reads.rows("CREATE TABLE written_by_a_read (a int)", ())
            assert await reads.rows("SELECT 3", ()) == [(3,)]
        finally:
            await reads.close()
        with pytest.raises(StoreUnavailable, match="shutting down"):
            await reads.rows("SELECT 1", ())

    asyncio.run(scenario())


def test_a_burst_waits_for_a_connection_instead_of_opening_one_a_request(
    pg_runtime: Runtime,
) -> None:
    async def burst() -> None:
        reads = AsyncHeldReads(pg_runtime.read_engine, keep=3, max_open=3)
        try:
            answers = await asyncio.gather(
                *(reads.rows("SELECT %s::int, pg_sleep(0.05)", (n,)) for n in range(12))
            )
            assert [a[0][0] for a in answers] == list(range(12))
            assert reads.opened == 3  # never more at once than max_open
        finally:
            await reads.close()

    asyncio.run(burst())


def test_held_async_reads_are_for_postgresql_only(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'store.db'}", "read")
    with pytest.raises(ValueError, match="PostgreSQL, not sqlite"):
        AsyncHeldReads(engine)
    engine.dispose()
