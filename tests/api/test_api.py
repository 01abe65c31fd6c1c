"""The HTTP API on both backends: contract, errors that say what is wrong, no leaks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.factories import items_fixture, people_fixture


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    return key


@pytest.fixture
def client(runtime: Runtime, admin_key: str) -> Iterator[TestClient]:
    app = create_app(runtime=runtime)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {admin_key}"
        yield c


def _seed(client: TestClient) -> None:
    users = [u.model_dump(mode="json") for u in people_fixture()]
    assert client.post("/v1/users", json={"users": users}).json() == {
        "created": len(users),
        "updated": 0,
    }
    items = [i.model_dump(mode="json") for i in items_fixture()]
    assert client.post("/v1/items", json={"items": items}).status_code == 200


def test_healthz_reports_schema_revision(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["revision"] != "none"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/users", "/v1/items", "/v1/events", "/v1/recommendations"} <= set(paths)


def test_events_batch_and_retry(client: TestClient) -> None:
    _seed(client)
    batch = {"events": [
        {"event_id": "x1", "user_id": "alice", "item_id": "e1", "action": "click"},
        {"event_type": "swipe_batch", "event_id": "s1", "user_id": "alice",
         "swipes": [{"candidate_id": "bob", "action": "like", "duration_ms": 1200}]},
    ]}  # fmt: skip
    first = client.post("/v1/events", json=batch).json()
    assert (first["written"], first["duplicates"]) == (2, 0)
    again = client.post("/v1/events", json=batch).json()
    assert (again["written"], again["duplicates"]) == (0, 2)


def test_bad_event_field_is_named(client: TestClient) -> None:
    _seed(client)
    batch = {"events": [
        {"user_id": "alice", "item_id": "e1", "action": "click"},
        {"user_id": "alice", "item_id": "e1", "action": "click", "position": -3},
    ]}  # fmt: skip
    response = client.post("/v1/events", json=batch)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input"
    assert body["message"].startswith("events[1].position:")
    unknown = client.post("/v1/events", json={"events": [
        {"user_id": "alice", "item_id": "e1", "action": "teleport"}]})  # fmt: skip
    assert unknown.status_code == 422
    assert "unknown action 'teleport'" in unknown.json()["message"]


def test_unknown_user_gets_404_with_message(client: TestClient) -> None:
    _seed(client)
    response = client.get("/v1/recommendations", params={"user_id": "nobody"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "unknown user 'nobody'"}
    response = client.post("/v1/interactions", json={
        "user_id": "nobody", "item_id": "e1", "action": "click"})  # fmt: skip
    assert response.status_code == 404
    assert "unknown user 'nobody'" in response.json()["message"]


def test_recommendations_for_items_with_filters(client: TestClient) -> None:
    _seed(client)
    body = client.get(
        "/v1/recommendations", params={"user_id": "alice", "kind": "item", "limit": 10}
    ).json()
    ids = [r["candidate_id"] for r in body["recommendations"]]
    assert "e3" not in ids  # already started
    assert set(ids) == {"e1", "e2", "e4"}
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3]
    assert all(r["reason"] for r in body["recommendations"])
    assert body["route"] and body["model_version"]
    only_munich = client.get(
        "/v1/recommendations", params={"user_id": "alice", "kind": "item", "city": "munich"}
    ).json()
    assert [r["candidate_id"] for r in only_munich["recommendations"]] == ["e4"]


def test_people_recommendations_respect_both_sides(client: TestClient) -> None:
    _seed(client)
    body = client.get("/v1/recommendations", params={"user_id": "alice", "kind": "user"}).json()
    ids = {r["candidate_id"] for r in body["recommendations"]}
    assert ids == {"bob", "carl", "ivan"}
    for r in body["recommendations"]:
        assert set(r) >= {"candidate_id", "score", "rank", "reason"}
        assert "email" not in r and "latitude" not in r


def test_interaction_like_then_match(client: TestClient) -> None:
    _seed(client)
    r1 = client.post("/v1/interactions", json={
        "user_id": "alice", "target_user_id": "bob", "action": "like"}).json()  # fmt: skip
    assert r1["match_created"] is False
    r2 = client.post("/v1/interactions", json={
        "user_id": "bob", "target_user_id": "alice", "action": "like"}).json()  # fmt: skip
    assert r2["match_created"] is True
    body = client.get("/v1/recommendations", params={"user_id": "alice", "kind": "user"}).json()
    assert "bob" not in {r["candidate_id"] for r in body["recommendations"]}


def test_invalid_profile_is_rejected_with_field(client: TestClient) -> None:
    bad = {"users": [{"id": "z", "age_min": 40, "age_max": 30}]}
    response = client.post("/v1/users", json=bad)
    assert response.status_code == 422
    assert "age_min must be <= age_max" in response.json()["message"]
    assert client.post("/v1/users", json={"users": [{"id": "has space"}]}).status_code == 422


def test_malformed_json_and_invalid_utf8_are_400_saying_why(client: TestClient) -> None:
    r = client.post(
        "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_body"
    assert r.json()["message"].startswith("body is not valid JSON: ")
    r = client.post(
        "/v1/events",
        content=b'{"events": ["\xff\xfe"]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "UTF-8" in r.json()["message"]


def test_oversized_body_is_413(client: TestClient) -> None:
    big = b"x" * (17 * 1024 * 1024)
    r = client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "over" in r.json()["message"]


def test_internal_error_does_not_leak_traceback(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text


def test_cached_list_is_served_until_asked_for_fresh(client: TestClient, runtime: Runtime) -> None:
    """The API's cache read (driver level, on the event loop for SQLite) answers what the
    session path would, drops candidates deactivated since, and steps aside for filters."""
    from matchwise.serve.recommend import recommend
    from matchwise.serve.refresh import refresh_users

    _seed(client)
    refresh_users(runtime, ["alice", "bob"], top_n=10, kind="item")
    params = {"user_id": "alice", "kind": "item", "limit": 10}
    cached = client.get("/v1/recommendations", params=params).json()
    assert cached["route"] == "cache"
    with runtime.session() as s:
        same = recommend(runtime, s, "alice", limit=10, kind="item")
    assert same.route == "cache"
    assert [(r["candidate_id"], r["reason"], r["rank"]) for r in cached["recommendations"]] == [
        (r.candidate_id, r.reason, r.rank) for r in same.recommendations
    ]
    assert cached["generated_at"].endswith("+00:00")
    fresh = client.get("/v1/recommendations", params={**params, "fresh": "true"}).json()
    assert fresh["route"] != "cache"
    assert {r["candidate_id"] for r in fresh["recommendations"]} == {
        r["candidate_id"] for r in cached["recommendations"]
    }
    gone = cached["recommendations"][0]["candidate_id"]
    item = next(i for i in items_fixture() if i.id == gone).model_dump(mode="json")
    assert client.post("/v1/items", json={"items": [{**item, "active": False}]}).status_code == 200
    after = client.get("/v1/recommendations", params=params).json()
    assert after["route"] == "cache"
    assert gone not in [r["candidate_id"] for r in after["recommendations"]]
    assert [r["rank"] for r in after["recommendations"]] == list(
        range(1, len(after["recommendations"]) + 1)
    )
    filtered = client.get("/v1/recommendations", params={**params, "city": "munich"}).json()
    assert filtered["route"] != "cache"
    assert (
        client.get("/v1/recommendations", params={**params, "user_id": "nobody"}).status_code == 404
    )


def test_a_users_item_and_people_lists_are_cached_side_by_side(
    client: TestClient, runtime: Runtime
) -> None:
    from matchwise.serve.refresh import refresh_users

    _seed(client)
    refresh_users(runtime, ["alice"], top_n=10, kind="item")
    refresh_users(runtime, ["alice"], top_n=10, kind="user")  # must not wipe the item list
    for kind in ("item", "user"):
        body = client.get("/v1/recommendations", params={"user_id": "alice", "kind": kind}).json()
        assert body["route"] == "cache", kind
        assert {r["candidate_kind"] for r in body["recommendations"]} == {kind}
