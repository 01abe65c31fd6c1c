"""Moderation: reported or flagged profiles never reach anyone's recommendations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.db.tables import AuditLog, User
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.ops.moderation import flag_profile
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from tests.ops.test_reports_abuse import establish
from tests.utils.factories import items_fixture, people_fixture


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "admin", name="mod1")
    with TestClient(create_app(runtime=runtime)) as c:
        c.headers["X-API-Key"] = key
        yield c


def _recommended(runtime: Runtime, user_id: str, use_cache: bool | None = None) -> set[str]:
    with runtime.session() as s:
        result = recommend(runtime, s, user_id, limit=50, kind="user",
                           use_cache=use_cache)  # fmt: skip
    return {r.candidate_id for r in result.recommendations}


def test_reports_from_enough_users_hide_a_profile(client: TestClient, runtime: Runtime) -> None:
    assert "bob" in _recommended(runtime, "alice")
    establish(runtime, ["erin_woman", "ivan", "carl"])  # reports count from established accounts
    for reporter, held in (("erin_woman", False), ("ivan", False), ("carl", True)):
        r = client.post("/v1/reports", json={"reporter_id": reporter, "reported_id": "bob",
                                             "reason": "scam"})  # fmt: skip
        assert r.status_code == 200 and r.json()["held_for_review"] is held
    assert "bob" not in _recommended(runtime, "alice")
    flags = client.get("/v1/admin/moderation").json()
    assert [(f["user_id"], f["source"], f["reports"]) for f in flags] == [("bob", "reports", 3)]
    resolved = client.post("/v1/admin/moderation", json={
        "flag_id": flags[0]["id"], "decision": "approve", "note": "looked fine",
        "moderator": "mod1"}).json()  # fmt: skip
    assert resolved["status"] == "approved" and resolved["resolved_by"].startswith("mod1 (key ")
    assert "bob" in _recommended(runtime, "alice")
    again = client.post("/v1/admin/moderation", json={"flag_id": flags[0]["id"],
                                                      "decision": "remove"})  # fmt: skip
    assert again.status_code == 409
    with runtime.session() as s:
        actions = list(s.scalars(select(AuditLog.action)))
    assert "moderation.flag" in actions and "moderation.approve" in actions


def test_flagged_profile_is_dropped_from_cached_lists(client: TestClient, runtime: Runtime) -> None:
    refresh_users(runtime, ["alice"], top_n=20, kind="user")
    assert "ivan" in _recommended(runtime, "alice", use_cache=True)
    with runtime.session() as s:
        flag_profile(s, "ivan", "classifier", {"spam_scam": 0.97})
    for user in ("alice",):
        served = _recommended(runtime, user, use_cache=True)
        assert "ivan" not in served and served  # the rest of the cached list still serves
    with runtime.session() as s:
        assert s.get(User, "ivan").moderation_status == "hidden"


def test_removed_profile_stays_hidden(client: TestClient, runtime: Runtime) -> None:
    with runtime.session() as s:
        flag = flag_profile(s, "carl", "classifier", {"fake_profile": 0.9})
        flag_id = flag.id
    client.post("/v1/admin/moderation", json={"flag_id": flag_id, "decision": "remove"})
    for user in ("alice", "erin_woman"):
        assert "carl" not in _recommended(runtime, user)


def test_bad_reports_are_rejected(client: TestClient) -> None:
    r = client.post("/v1/reports", json={"reporter_id": "bob", "reported_id": "bob",
                                         "reason": "spam"})  # fmt: skip
    assert r.status_code == 422 and "themselves" in r.json()["message"]
    r = client.post("/v1/reports", json={"reporter_id": "bob", "reported_id": "alice",
                                         "reason": "ugly"})  # fmt: skip
    assert r.status_code == 422 and r.json()["message"].startswith("reason:")
    r = client.post("/v1/reports", json={"reporter_id": "zed", "reported_id": "alice",
                                         "reason": "spam"})  # fmt: skip
    assert r.status_code == 404
