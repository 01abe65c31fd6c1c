"""Redis as the shared online cache, against a real Redis server and both stores:
refresh writes it, the API reads it first, hidden candidates vanish at once, and Redis
being down never fails a request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from matchwise.api import create_app
from matchwise.db.online import hidden_key, list_key
from matchwise.db.tables import Item, utcnow
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.ops.moderation import flag_profile
from matchwise.runtime import Runtime
from matchwise.serve.online import decode, encode
from matchwise.serve.refresh import refresh_users
from matchwise.serve.types import Recommendation, RecommendationList
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture

PARAMS = {"user_id": "alice", "kind": "item", "limit": 10}


@pytest.fixture
def online(settings: Settings, redis_url: str) -> Iterator[Runtime]:
    runtime = Runtime.open(settings.model_copy(update={"redis_url": redis_url}), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    yield runtime
    runtime.close()


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _ids(body: dict) -> list[str]:
    return [r["candidate_id"] for r in body["recommendations"]]


def test_refresh_writes_redis_and_the_api_reads_it_first(online: Runtime) -> None:
    stats = refresh_users(online, None, top_n=10, kind="item")
    assert stats["rows"] > 0
    assert online.online is not None
    assert online.online.client.exists(list_key("item", "alice"))
    with _client(online) as client:
        from_db_path = client.get("/v1/recommendations", params=PARAMS).json()
        with online.session() as s:  # the database copy gone: Redis alone answers
            s.execute(delete(CachedRow))
        body = client.get("/v1/recommendations", params=PARAMS).json()
    assert body["route"] == "cache"
    assert body == from_db_path
    assert body["generated_at"].endswith("+00:00")


def test_a_deactivated_item_leaves_the_redis_list_at_once(online: Runtime) -> None:
    refresh_users(online, ["alice"], top_n=10, kind="item")
    with _client(online) as client:
        before = client.get("/v1/recommendations", params=PARAMS).json()
        gone = before["recommendations"][0]["candidate_id"]
        item = next(i for i in items_fixture() if i.id == gone)
        off = item.model_copy(update={"active": False}).model_dump(mode="json")
        assert client.post("/v1/items", json={"items": [off]}).status_code == 200
        after = client.get("/v1/recommendations", params=PARAMS).json()
        assert after["route"] == "cache"
        assert _ids(after) == [i for i in _ids(before) if i != gone]
        assert [r["rank"] for r in after["recommendations"]] == list(range(1, len(_ids(after)) + 1))
        on = item.model_dump(mode="json")
        assert client.post("/v1/items", json={"items": [on]}).status_code == 200
        assert _ids(client.get("/v1/recommendations", params=PARAMS).json()) == _ids(before)


def test_a_held_profile_leaves_people_lists_and_a_rollback_changes_nothing(
    online: Runtime,
) -> None:
    refresh_users(online, ["alice"], top_n=10, kind="user")
    people = {"user_id": "alice", "kind": "user", "limit": 10}
    with _client(online) as client:
        before = _ids(client.get("/v1/recommendations", params=people).json())
        assert "bob" in before
        with pytest.raises(RuntimeError), online.session() as s:
            flag_profile(s, "bob", "report", {"reports": 3})
            raise RuntimeError("the transaction fails after the hold")
        assert _ids(client.get("/v1/recommendations", params=people).json()) == before
        with online.session() as s:
            flag_profile(s, "bob", "report", {"reports": 3})
        body = client.get("/v1/recommendations", params=people).json()
    assert body["route"] == "cache"
    assert _ids(body) == [i for i in before if i != "bob"]


def test_full_refresh_reconciles_changes_made_behind_matchwise(online: Runtime) -> None:
    refresh_users(online, None, top_n=10, kind="item")
    with online.session() as s:  # a direct SQL change: no hook sees it
        s.execute(update(Item).where(Item.id == "e1").values(active=False))
    assert online.online is not None
    assert "e1" not in online.online.hidden("item")
    refresh_users(online, None, top_n=10, kind="item")
    assert "e1" in online.online.hidden("item")
    with online.session() as s:
        s.execute(update(Item).where(Item.id == "e1").values(active=True))
    refresh_users(online, None, top_n=10, kind="item")
    assert "e1" not in online.online.hidden("item")


def test_redis_down_falls_back_to_the_database_cache(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    runtime = Runtime.open(down, migrate=False)
    try:
        with runtime.session() as s:
            upsert_users(s, people_fixture())  # the visibility hook must not raise either
            upsert_items(s, items_fixture())
        refresh_users(runtime, ["alice"], top_n=10, kind="item")  # logs, does not raise
        with _client(runtime) as client:
            response = client.get("/v1/recommendations", params=PARAMS)
        assert response.status_code == 200
        assert response.json()["route"] == "cache"  # the database copy answered
    finally:
        runtime.close()


def test_stale_redis_list_is_not_served(online: Runtime) -> None:
    refresh_users(online, ["alice"], top_n=10, kind="item")
    assert online.online is not None
    old = utcnow() - timedelta(seconds=online.settings.cache_max_age_seconds + 5)
    payload = online.online.client.get(list_key("item", "alice"))
    result = decode(payload, [], "alice", "item", 10, online.settings.cache_max_age_seconds,
                    utcnow())  # fmt: skip
    assert result is not None
    aged = RecommendationList("alice", "cache", result.model_version, old,
                              result.recommendations)  # fmt: skip
    online.online.client.set(list_key("item", "alice"), encode(aged))
    with online.session() as s:
        s.execute(update(CachedRow).values(generated_at=old))
    with _client(online) as client:
        assert client.get("/v1/recommendations", params=PARAMS).json()["route"] != "cache"


def test_encode_decode_round_trip_drops_hidden_positions() -> None:
    now = utcnow()
    recs = [Recommendation(f"e{n}", "item", 1.0 - n / 10, n + 1, f"why {n}", None)
            for n in range(4)]  # fmt: skip
    payload = encode(RecommendationList("u", "warm", "v1", now, recs))
    out = decode(payload, [2], "u", "item", 2, 60, now)
    assert out is not None
    assert [(r.candidate_id, r.rank) for r in out.recommendations] == [("e0", 1), ("e2", 2)]
    assert hidden_key("item") != list_key("item", "u")


def test_mirror_fills_an_empty_redis_from_the_database_cache(
    settings: Settings, online: Runtime
) -> None:
    from matchwise.serve.online import mirror_database_cache

    plain = Runtime.open(settings, migrate=False)  # no Redis: only the database is written
    try:
        refresh_users(plain, None, top_n=10, kind="item")
        refresh_users(plain, ["alice", "bob"], top_n=10, kind="user")
    finally:
        plain.close()
    assert online.online is not None
    assert not online.online.client.exists(list_key("item", "alice"))
    with _client(online) as client:
        from_db = client.get("/v1/recommendations", params=PARAMS).json()
        people = {"user_id": "bob", "kind": "user", "limit": 10}
        people_from_db = client.get("/v1/recommendations", params=people).json()
        assert from_db["route"] == people_from_db["route"] == "cache"
        assert mirror_database_cache(online, batch=2) >= 3
        with online.session() as s:
            s.execute(delete(CachedRow))
        assert client.get("/v1/recommendations", params=PARAMS).json() == from_db
        assert client.get("/v1/recommendations", params=people).json() == people_from_db


def test_mirror_without_redis_is_a_clear_error(settings: Settings) -> None:
    from matchwise.errors import ConfigError
    from matchwise.serve.online import mirror_database_cache

    runtime = Runtime.open(settings, migrate=False)
    try:
        with pytest.raises(ConfigError, match="redis_url is not set"):
            mirror_database_cache(runtime)
    finally:
        runtime.close()
