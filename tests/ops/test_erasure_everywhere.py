"""``DELETE /v1/users/{id}``: a person erases themself (or an admin erases them), on both
stores, and is gone from every route at once — people lists computed live from a
catalogue loaded before the erasure, the database and Redis caches, matches, similar
people — in the same process and in a fresh one; their events stay only as daily counts
without the id, so admin metrics keep their totals; the audit entry names no one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.db.tables import AuditLog, Base
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key, mint_token
from matchwise.ops.privacy import tombstone_of
from matchwise.runtime import Runtime
from matchwise.schemas import ImpressionEvent, InteractionIn
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import ServingState, reset_serving_state, serving_state
from tests.utils.factories import items_fixture, people_fixture, person
from tests.utils.waiting import until

GONE = "leaving-7314"


def _seed(runtime: Runtime) -> dict[str, str]:
    """GONE fits alice (so is in her list), matched erin, is liked by ivan, clicked an
    event after seeing it; keys of each scope and tokens for GONE and alice."""
    with runtime.session() as s:
        upsert_users(s, [*people_fixture(), person(GONE, gender="man", seeking=["woman"],
                                                   age=33, tags=["hiking", "jazz"])])  # fmt: skip
        upsert_items(s, items_fixture())
        events: list[Any] = [
            InteractionIn(user_id=GONE, target_user_id="erin_woman", action="like"),
            InteractionIn(user_id="erin_woman", target_user_id=GONE, action="like"),
            InteractionIn(user_id="ivan", target_user_id=GONE, action="like"),
            InteractionIn(user_id="bob", target_user_id="erin_woman", action="like"),
            ImpressionEvent(event_type="impression", user_id=GONE, candidate_ids=["e1", "e2"],
                            candidate_kind="item"),
            InteractionIn(user_id=GONE, item_id="e1", action="click"),
            InteractionIn(user_id="bob", item_id="e2", action="click"),
        ]  # fmt: skip
        ingest_events(s, events, runtime.settings.action_table)
        keys = {scope: create_key(s, scope, name="tests")[0] for scope in ("ingest", "read",
                                                                           "admin")}  # fmt: skip
    for who in (GONE, "alice"):
        keys[who] = mint_token(runtime.settings, who).token
    keys["gone-read"] = mint_token(runtime.settings, GONE, scope="read").token
    return keys


def _as(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def _people(client: TestClient, keys: dict[str, str], user: str, fresh: bool) -> list[str]:
    params = {"user_id": user, "kind": "user", "limit": 50, "fresh": fresh}
    answer = client.get("/v1/recommendations", headers=_as(keys["read"]), params=params)
    assert answer.status_code == 200, answer.text
    return [r["candidate_id"] for r in answer.json()["recommendations"]]


def _everywhere(client: TestClient, keys: dict[str, str]) -> str:
    """What every read route answers about the people around GONE, as one text."""
    seen = []
    for user in ("alice", "erin_woman", "ivan", "bob"):
        for fresh in (False, True):
            seen.append(f"{user} people fresh={fresh}: {_people(client, keys, user, fresh)}")
        for what in ("matches", "similar"):
            answer = client.get(f"/v1/users/{user}/{what}", headers=_as(keys["read"]))
            seen.append(f"{user} {what}: {answer.text}")
    return "\n".join(seen)


def _every_row(runtime: Runtime) -> str:
    with runtime.session() as s:
        return "\n".join(f"{table.name}: {json.dumps([str(v) for v in row])}"
                         for table in Base.metadata.sorted_tables
                         for row in s.execute(select(table)).all())  # fmt: skip


def _patched_out(state: ServingState, user_id: str) -> bool:
    """Whether the people catalogue hides ``user_id`` and holds neither their bio nor its
    vector."""
    cat = state._people
    assert cat is not None and user_id in cat.position  # the catalogue that held them
    row = cat.position[user_id]
    vectors = cat.bio_vectors()
    return (not cat.visible[row] and cat.bios[row] == ""
            and (vectors is None or not vectors[row].any()))  # fmt: skip


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


def test_a_person_erases_themself_and_is_gone_from_every_route(
    runtime: Runtime, client: TestClient
) -> None:
    keys = _seed(runtime)
    refresh_users(runtime, ["alice", "erin_woman"], top_n=20, kind="user")
    assert GONE in _people(client, keys, "alice", fresh=True)  # the live catalogue holds GONE
    second = Runtime.open(runtime.settings, migrate=False)  # another server process
    elsewhere = TestClient(create_app(runtime=second), raise_server_exceptions=False)
    elsewhere.__enter__()
    assert GONE in _people(elsewhere, keys, "alice", fresh=True)  # its catalogue, loaded now
    before = _everywhere(client, keys)
    assert before.count(GONE) >= 4, before  # alice's lists, erin's matches, bob's similar
    assert GONE in next(line for line in before.splitlines() if line.startswith("bob similar"))
    metrics = client.get("/v1/admin/metrics", headers=_as(keys["admin"])).json()["totals"]
    assert metrics["impressions"] == 2 and metrics["clicks"] == 2

    for who in ("alice", "read", "ingest", "gone-read"):  # another's token, keys, read-only
        refused = client.delete(f"/v1/users/{GONE}", headers=_as(keys[who]))
        assert refused.status_code == 403, (who, refused.text)
    assert GONE in _every_row(runtime)

    answer = client.delete(f"/v1/users/{GONE}", headers=_as(keys[GONE]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["deleted"]["users"] == 1 and body["deleted"]["matches"] == 1
    assert body["deleted"]["recommendations"] >= 1  # in alice's cached list

    after = _everywhere(client, keys)
    assert GONE not in after, after
    assert "bob" in after  # the lists still answer
    try:  # the other process's catalogue may still hold GONE: serving checks with the store
        assert GONE not in _everywhere(elsewhere, keys)
        if not runtime.is_sqlite:  # and at the notice it patched them out of memory
            assert until(lambda: _patched_out(serving_state(second), GONE), 5.0)
    finally:
        elsewhere.__exit__(None, None, None)
        second.close()
    rows = _every_row(runtime)
    assert GONE not in rows, [line for line in rows.splitlines() if GONE in line]
    with runtime.session() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "user.erase")).one()
    assert entry.target == tombstone_of(runtime.settings.hash_secret, GONE)
    assert entry.actor == "user [erased] (token)"
    kept = client.get("/v1/admin/metrics", headers=_as(keys["admin"])).json()["totals"]
    assert kept == metrics  # their impressions and clicks stay, as counts without the id

    for path in (f"/v1/users/{GONE}/matches", f"/v1/users/{GONE}/similar",
                 f"/v1/recommendations?user_id={GONE}"):  # fmt: skip
        assert client.get(path, headers=_as(keys["read"])).status_code == 404
    again = client.delete(f"/v1/users/{GONE}", headers=_as(keys["admin"]))
    assert again.status_code == 404 and "already erased" in again.json()["message"]
    assert client.delete(f"/v1/admin/users/{GONE}", headers=_as(keys["admin"])).status_code == 404

    reset_serving_state(runtime)  # a fresh server process on the same store
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as fresh:
        assert GONE not in _everywhere(fresh, keys)


def test_an_admin_erases_someone_served_from_redis(runtime: Runtime, redis_url: str) -> None:
    online = Runtime.open(runtime.settings.model_copy(update={"redis_url": redis_url}),
                          migrate=False)  # fmt: skip
    try:
        keys = _seed(online)
        refresh_users(online, ["alice", "erin_woman", GONE], top_n=20, kind="user")
        store = redis.Redis.from_url(redis_url)
        with TestClient(create_app(runtime=online), raise_server_exceptions=False) as client:
            cached = client.get("/v1/recommendations", headers=_as(keys["read"]),
                                params={"user_id": "alice", "kind": "user"})  # fmt: skip
            assert cached.json()["route"] == "cache"
            assert GONE in [r["candidate_id"] for r in cached.json()["recommendations"]]
            assert any(GONE.encode() in (store.get(k) or b"") for k in store.scan_iter("*rec*"))

            answer = client.delete(f"/v1/users/{GONE}", headers=_as(keys["admin"]))
            assert answer.status_code == 200, answer.text
            assert answer.json()["online_keys"] >= 2  # GONE's own list, and alice's
            assert GONE not in _everywhere(client, keys)
        for key in store.scan_iter(count=1000):
            assert GONE.encode() not in key
            if store.type(key) == b"string":
                assert GONE.encode() not in (store.get(key) or b""), key
            elif store.type(key) == b"set":
                assert GONE.encode() not in store.smembers(key), key
        store.close()
    finally:
        online.close()
