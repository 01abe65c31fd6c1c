"""The HTTP API on both backends: contract, errors that say what is wrong, no leaks.

Spoken through matchwise.client, as an app would; only what no client sends (bodies that
are not JSON, too large, a route that crashes) goes as raw HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.client import MatchwiseAPIError, MatchwiseClient
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, ItemIn, Swipe, SwipeBatchEvent, UpsertResult
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from tests.utils.factories import items_fixture, people_fixture


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    return key


@pytest.fixture
def api(runtime: Runtime, admin_key: str) -> Iterator[MatchwiseClient]:
    app = create_app(runtime=runtime)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield MatchwiseClient(api_key=admin_key, http=http)


@pytest.fixture
def raw(api: MatchwiseClient, admin_key: str) -> TestClient:
    """The same app as plain HTTP, for requests no client would send."""
    http = api.http
    assert isinstance(http, TestClient)
    http.headers["Authorization"] = f"Bearer {admin_key}"
    return http


def _seed(api: MatchwiseClient) -> None:
    users = people_fixture()
    assert api.upsert_users(users) == UpsertResult(created=len(users), updated=0)
    assert api.upsert_items(items_fixture()).created == len(items_fixture())


def _error(call: Callable[[], object]) -> MatchwiseAPIError:
    """The error a client call raised."""
    with pytest.raises(MatchwiseAPIError) as raised:
        call()
    return raised.value


def test_healthz_reports_schema_revision(api: MatchwiseClient) -> None:
    health = api.health()
    assert health.status == "ok" and health.revision != "none"


def test_events_batch_and_retry(api: MatchwiseClient) -> None:
    _seed(api)
    batch = [
        InteractionIn(event_id="x1", user_id="alice", item_id="e1", action="click"),
        SwipeBatchEvent(
            event_type="swipe_batch",
            event_id="s1",
            user_id="alice",
            swipes=[Swipe(candidate_id="bob", action="like", duration_ms=1200)],
        ),
    ]
    first = api.send_events(batch)
    assert (first.written, first.duplicates) == (2, 0)
    again = api.send_events(batch)
    assert (again.written, again.duplicates) == (0, 2)


def test_bad_event_field_is_named(api: MatchwiseClient) -> None:
    _seed(api)
    error = _error(lambda: api.send_events([
        {"user_id": "alice", "item_id": "e1", "action": "click"},
        {"user_id": "alice", "item_id": "e1", "action": "click", "position": -3},
    ]))  # fmt: skip
    assert (error.status_code, error.error) == (422, "invalid_input")
    assert error.message.startswith("events[1].position:")
    unknown = _error(
        lambda: api.send_events([{"user_id": "alice", "item_id": "e1", "action": "teleport"}])
    )
    assert unknown.status_code == 422
    assert "unknown action 'teleport'" in unknown.message


def test_a_match_without_the_other_person_is_422(api: MatchwiseClient) -> None:
    """Not a 500: an interaction "match" names both people."""
    _seed(api)
    message = "a match is between two people: give target_user_id"
    for event in ({"user_id": "alice", "action": "match"},
                  {"user_id": "alice", "item_id": "e1", "action": "match"}):  # fmt: skip
        with pytest.raises(MatchwiseAPIError) as batch:
            api.send_events([event])
        assert (batch.value.status_code, batch.value.message) == (422, f"events[0]: {message}")
        with pytest.raises(MatchwiseAPIError) as single:
            api.record_interaction(event)
        assert single.value.status_code == 422 and message in single.value.message


def test_unknown_user_gets_404_with_message(api: MatchwiseClient) -> None:
    _seed(api)
    error = _error(lambda: api.recommendations("nobody"))
    assert (error.status_code, error.error, error.message) == (
        404,
        "not_found",
        "unknown user 'nobody'",
    )
    error = _error(
        lambda: api.record_interaction({"user_id": "nobody", "item_id": "e1", "action": "click"})
    )
    assert error.status_code == 404
    assert "unknown user 'nobody'" in error.message


def test_recommendations_for_items_with_filters(api: MatchwiseClient) -> None:
    _seed(api)
    body = api.recommendations("alice", kind="item", limit=10)
    ids = [r.candidate_id for r in body.recommendations]
    assert "e3" not in ids  # already started
    assert set(ids) == {"e1", "e2", "e4"}
    assert [r.rank for r in body.recommendations] == [1, 2, 3]
    assert all(r.reason for r in body.recommendations)
    assert body.route and body.model_version
    only_munich = api.recommendations("alice", kind="item", city="munich")
    assert [r.candidate_id for r in only_munich.recommendations] == ["e4"]


def test_people_recommendations_respect_both_sides(api: MatchwiseClient, raw: TestClient) -> None:
    _seed(api)
    body = api.recommendations("alice", kind="user")
    assert {r.candidate_id for r in body.recommendations} == {"bob", "carl", "ivan"}
    wire = raw.get("/v1/recommendations", params={"user_id": "alice", "kind": "user"}).json()
    for r in wire["recommendations"]:  # what is on the wire, not what a model keeps
        assert set(r) >= {"candidate_id", "score", "rank", "reason"}
        assert "email" not in r and "latitude" not in r


def test_interaction_like_then_match(api: MatchwiseClient) -> None:
    _seed(api)
    like = api.record_interaction({"user_id": "alice", "target_user_id": "bob", "action": "like"})
    assert like.match_created is False
    back = api.record_interaction(
        InteractionIn(user_id="bob", target_user_id="alice", action="like")
    )
    assert back.match_created is True
    body = api.recommendations("alice", kind="user")
    assert "bob" not in {r.candidate_id for r in body.recommendations}


def test_invalid_profile_is_rejected_with_field(api: MatchwiseClient) -> None:
    error = _error(lambda: api.upsert_users([{"id": "z", "age_min": 40, "age_max": 30}]))
    assert error.status_code == 422
    assert "age_min must be <= age_max" in error.message
    assert _error(lambda: api.upsert_users([{"id": "has space"}])).status_code == 422


def test_malformed_json_and_invalid_utf8_are_400_saying_why(raw: TestClient) -> None:
    r = raw.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_body"
    assert r.json()["message"].startswith("body is not valid JSON: ")
    r = raw.post(
        "/v1/events",
        content=b'{"events": ["\xff\xfe"]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "UTF-8" in r.json()["message"]


def test_oversized_body_is_413(raw: TestClient) -> None:
    big = b"x" * (17 * 1024 * 1024)
    r = raw.post("/v1/events", content=big, headers={"content-type": "application/json"})
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


def test_cached_list_is_served_until_asked_for_fresh(
    api: MatchwiseClient, runtime: Runtime
) -> None:
    """The API's cache read (driver level, on the event loop for SQLite) answers what the
    session path would, drops candidates deactivated since, and steps aside for filters."""
    _seed(api)
    refresh_users(runtime, ["alice", "bob"], top_n=10, kind="item")
    cached = api.recommendations("alice", kind="item", limit=10)
    assert cached.route == "cache"
    with runtime.session() as s:
        same = recommend(runtime, s, "alice", limit=10, kind="item")
    assert same.route == "cache"
    assert [(r.candidate_id, r.reason, r.rank) for r in cached.recommendations] == [
        (r.candidate_id, r.reason, r.rank) for r in same.recommendations
    ]
    assert cached.generated_at.utcoffset() == timedelta(0)
    fresh = api.recommendations("alice", kind="item", limit=10, fresh=True)
    assert fresh.route != "cache"
    assert {r.candidate_id for r in fresh.recommendations} == {
        r.candidate_id for r in cached.recommendations
    }
    gone = cached.recommendations[0].candidate_id
    item = next(i for i in items_fixture() if i.id == gone)
    api.upsert_items([ItemIn(**{**item.model_dump(), "active": False})])
    after = api.recommendations("alice", kind="item", limit=10)
    assert after.route == "cache"
    assert gone not in [r.candidate_id for r in after.recommendations]
    assert [r.rank for r in after.recommendations] == list(range(1, len(after.recommendations) + 1))
    filtered = api.recommendations("alice", kind="item", limit=10, city="munich")
    assert filtered.route != "cache"
    assert _error(lambda: api.recommendations("nobody", kind="item")).status_code == 404


def test_a_users_item_and_people_lists_are_cached_side_by_side(
    api: MatchwiseClient, runtime: Runtime
) -> None:
    _seed(api)
    refresh_users(runtime, ["alice"], top_n=10, kind="item")
    refresh_users(runtime, ["alice"], top_n=10, kind="user")  # must not wipe the item list
    kinds: tuple[Literal["item", "user"], ...] = ("item", "user")
    for kind in kinds:
        body = api.recommendations("alice", kind=kind)
        assert body.route == "cache", kind
        assert {r.candidate_kind for r in body.recommendations} == {kind}
