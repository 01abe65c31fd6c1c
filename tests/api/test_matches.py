"""``GET /v1/users/{id}/matches`` answers what an app's matches screen needs, on both
stores: the other person, when, how the match came about, a page at a time; a user token
reads only its own; someone held by moderation, blocked or erased is never listed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_users
from matchwise.ops.auth import create_key, mint_token
from matchwise.ops.moderation import flag_profile
from matchwise.ops.privacy import erase_user
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, MatchEvent
from tests.utils.factories import people_fixture, person

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _like(who: str, whom: str, minutes: int, action: str = "like") -> InteractionIn:
    return InteractionIn(user_id=who, target_user_id=whom, action=action,
                         timestamp=T0 + timedelta(minutes=minutes))  # fmt: skip


@pytest.fixture
def matched(runtime: Runtime) -> dict[str, str]:
    """Alice matched with bob (mutual likes), carl (he superliked), ivan (reported by the
    app), then with zoe, yan and xia; returns keys and a token for alice."""
    with runtime.session() as s:
        upsert_users(s, [*people_fixture(), *(person(p, gender="man", seeking=["woman"])
                                               for p in ("zoe", "yan", "xia"))])  # fmt: skip
        events: list[InteractionIn | MatchEvent] = [
            _like("alice", "bob", 0), _like("bob", "alice", 1),
            _like("carl", "alice", 2, "superlike"), _like("alice", "carl", 3),
            MatchEvent(event_type="match", user_id="ivan", matched_user_id="alice",
                       timestamp=T0 + timedelta(minutes=4)),
        ]  # fmt: skip
        for minutes, other in enumerate(("zoe", "yan", "xia"), start=5):
            events += [_like("alice", other, minutes), _like(other, "alice", minutes)]
        ingest_events(s, events, runtime.settings.action_table)
        keys = {scope: create_key(s, scope)[0] for scope in ("read", "admin")}
    keys["alice"] = mint_token(runtime.settings, "alice").token
    return keys


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


def _get(client: TestClient, credential: str, user: str = "alice", **params: int) -> dict:
    answer = client.get(f"/v1/users/{user}/matches", params=params,
                        headers={"Authorization": f"Bearer {credential}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_matches_say_who_when_and_how_a_page_at_a_time(
    client: TestClient, matched: dict[str, str]
) -> None:
    body = _get(client, matched["alice"])
    listed = [(m["user_id"], m["match_type"]) for m in body["matches"]]
    assert listed == [
        ("xia", "mutual_like"),
        ("yan", "mutual_like"),
        ("zoe", "mutual_like"),
        ("ivan", "reported"),
        ("carl", "superlike"),
        ("bob", "mutual_like"),
    ]
    assert all(datetime.fromisoformat(m["matched_at"]) for m in body["matches"])
    assert body["total"] == 6 and body["next_offset"] is None

    pages, offset = [], 0
    while offset is not None:
        page = _get(client, matched["read"], limit=4, offset=offset)
        pages.append([m["user_id"] for m in page["matches"]])
        offset = page["next_offset"]
    assert pages == [["xia", "yan", "zoe", "ivan"], ["carl", "bob"]]
    assert _get(client, matched["read"], offset=50)["matches"] == []


def test_a_token_reads_its_own_matches_only(client: TestClient, matched: dict[str, str]) -> None:
    refused = client.get("/v1/users/bob/matches",
                         headers={"Authorization": f"Bearer {matched['alice']}"})  # fmt: skip
    assert refused.status_code == 403 and "not for 'bob'" in refused.json()["message"]
    for bad in ({"limit": 0}, {"offset": -1}):
        wrong = client.get("/v1/users/alice/matches", params=bad,
                           headers={"Authorization": f"Bearer {matched['read']}"})  # fmt: skip
        assert wrong.status_code == 422


def test_held_blocked_and_erased_people_are_never_listed(
    runtime: Runtime, client: TestClient, matched: dict[str, str]
) -> None:
    with runtime.session() as s:
        flag_profile(s, "zoe", "classifier", {"spam_scam": 0.97})  # held for review
        ingest_events(s, [InteractionIn(user_id="yan", target_user_id="alice", action="block")],
                      runtime.settings.action_table)  # fmt: skip
    erase_user(runtime, "xia", "tests")
    for credential in (matched["alice"], matched["read"]):
        body = _get(client, credential)
        assert [m["user_id"] for m in body["matches"]] == ["ivan", "carl", "bob"]
        assert body["total"] == 3
    assert _get(client, matched["read"], user="bob")["matches"][0]["user_id"] == "alice"
    gone = client.get("/v1/users/xia/matches",
                      headers={"Authorization": f"Bearer {matched['read']}"})  # fmt: skip
    assert gone.status_code == 404
