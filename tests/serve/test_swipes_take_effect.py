"""A swipe takes effect the moment it is acknowledged, with no worker running: the served
list (database cache, Redis and live alike) drops whoever the user decided on and
whoever refused the user, while someone who liked the user stays eligible."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from matchwise.api import create_app
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture, person


def _people() -> list:
    # alice (woman seeking men) and three men who fit her; dora, a second woman bob fits
    return [*people_fixture(), person("dora", age=31)]


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _served(client: TestClient, user: str, kind: str = "user", **extra: object) -> tuple:
    params = {"user_id": user, "kind": kind, "limit": 20, **extra}
    body = client.get("/v1/recommendations", params=params).json()
    return body["route"], [r["candidate_id"] for r in body["recommendations"]]


def _swipe(client: TestClient, actor: str, target: str, action: str) -> None:
    swipe = {"user_id": actor, "target_user_id": target, "action": action}
    response = client.post("/v1/interactions", json=swipe)
    assert response.status_code == 200, response.text


def _opened(settings: Settings) -> Runtime:
    # no worker runs in these tests: a queued refresh_user job would never be run
    runtime = Runtime.open(settings, migrate=False)
    with runtime.session() as s:
        upsert_users(s, _people())
        upsert_items(s, items_fixture())
    return runtime


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Runtime]:
    """The same store with the database cache alone, or with Redis in front of it."""
    if request.param == "redis":
        settings = settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    runtime = _opened(settings)
    yield runtime
    runtime.close()


@pytest.fixture
def redis_store(settings: Settings, redis_url: str) -> Iterator[Runtime]:
    runtime = _opened(settings.model_copy(update={"redis_url": redis_url}))
    yield runtime
    runtime.close()


def test_a_swipe_leaves_both_cached_lists_at_once(store: Runtime) -> None:
    refresh_users(store, ["alice", "bob", "carl", "ivan"], top_n=20, kind="user")
    with _client(store) as client:
        route, before = _served(client, "alice")
        assert route == "cache" and {"bob", "carl", "ivan"} <= set(before)
        assert "alice" in _served(client, "bob")[1]
        _swipe(client, "alice", "bob", "pass")  # she decided on bob
        _swipe(client, "carl", "alice", "reject")  # carl refused her
        _swipe(client, "ivan", "alice", "like")  # ivan likes her: he must stay
        route, after = _served(client, "alice")
        assert route == "cache"
        assert "bob" not in after and "carl" not in after
        assert "ivan" in after
        assert "alice" not in _served(client, "bob")[1]  # who passed on bob leaves his list
        assert "alice" not in _served(client, "carl")[1]  # and carl's, who refused her
        # the live path says the same
        fresh = _served(client, "alice", fresh=True)[1]
        assert "bob" not in fresh and "carl" not in fresh and "ivan" in fresh


def test_redis_alone_answers_without_the_decided(redis_store: Runtime) -> None:
    """The Redis copy drops them too, not only the database copy."""
    store = redis_store
    refresh_users(store, ["alice"], top_n=20, kind="user")
    with _client(store) as client:
        _swipe(client, "alice", "bob", "like")
        _swipe(client, "carl", "alice", "block")
        with store.session() as s:  # the database copy gone: Redis alone answers
            s.execute(delete(CachedRow))
        route, served = _served(client, "alice")
    assert route == "cache"
    assert "bob" not in served and "carl" not in served and "ivan" in served


def test_an_item_acted_on_leaves_the_cached_list(store: Runtime) -> None:
    refresh_users(store, ["alice"], top_n=20, kind="item")
    with _client(store) as client:
        route, before = _served(client, "alice", "item")
        assert route == "cache" and "e1" in before
        register = {"user_id": "alice", "item_id": "e1", "action": "register"}
        response = client.post("/v1/interactions", json=register)
        assert response.status_code == 200
        route, after = _served(client, "alice", "item")
    assert route == "cache"
    assert after == [i for i in before if i != "e1"]


def test_a_swipe_batch_event_takes_effect_too(store: Runtime) -> None:
    refresh_users(store, ["alice"], top_n=20, kind="user")
    with _client(store) as client:
        batch = {"events": [{"event_type": "swipe_batch", "user_id": "alice", "swipes": [
            {"candidate_id": "bob", "action": "like"},
            {"candidate_id": "carl", "action": "pass"}]}]}  # fmt: skip
        assert client.post("/v1/events", json=batch).status_code == 200
        route, served = _served(client, "alice")
    assert route == "cache" and "bob" not in served and "carl" not in served


def test_people_who_passed_on_you_are_not_shown_live(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, _people())
    with _client(runtime) as client:
        assert "carl" in _served(client, "alice", fresh=True)[1]
        _swipe(client, "carl", "alice", "pass")
        assert "carl" not in _served(client, "alice", fresh=True)[1]
        # being shown someone is not deciding on them
        shown = {"event_type": "impression", "user_id": "alice", "candidate_ids": ["bob"],
                 "candidate_kind": "user"}  # fmt: skip
        assert client.post("/v1/events", json={"events": [shown]}).status_code == 200
        assert "bob" in _served(client, "alice", fresh=True)[1]
