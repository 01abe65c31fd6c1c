"""Seed 001's events as the seed writes them: its ``match`` event (``user_a_id``,
``user_b_id``, ``match_type``) is accepted over HTTP beside matchwise's own shape and
stored like the match a mutual like makes (never between blocked people, nothing of it
kept then); an impression without ``candidate_kind`` has its kind inferred from the ids,
and one that cannot be inferred is refused with a 422 saying what to add."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from matchwise.api import create_app
from matchwise.db.tables import Interaction, Match
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import ItemIn
from tests.utils.factories import NOW, items_fixture, people_fixture

SEED_MATCH = {
    "event_type": "match",
    "user_a_id": "alice",
    "user_b_id": "bob",
    "match_type": "mutual_like",
    "timestamp": NOW.isoformat(),
}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "admin", name="tests")
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        yield http


def _post(client: TestClient, *events: dict) -> tuple[int, dict]:
    response = client.post("/v1/events", json={"events": list(events)})
    return response.status_code, response.json()


def _count(runtime: Runtime, model: type, *where: object) -> int:
    with runtime.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_seed_match_event_is_accepted_as_written(client: TestClient, runtime: Runtime) -> None:
    status, body = _post(client, SEED_MATCH)
    assert status == 200, body
    assert body["matches_created"] == [["alice", "bob"]]
    assert _count(runtime, Match) == 1
    # a retry is recognised (same content, same time) and makes nothing twice
    status, body = _post(client, SEED_MATCH)
    assert status == 200 and body["written"] == 0 and body["matches_created"] == []
    assert _count(runtime, Match) == 1
    # matchwise's own shape still works
    own = {"event_type": "match", "user_id": "alice", "matched_user_id": "carl"}
    status, body = _post(client, own)
    assert status == 200 and body["matches_created"] == [["alice", "carl"]]
    # both shapes at once are refused, naming the fields
    mixed = {"event_type": "match", "user_a_id": "alice", "matched_user_id": "ivan"}
    status, body = _post(client, mixed)
    assert status == 422 and "user_a_id and user_b_id" in body["message"]


def test_seed_match_between_blocked_people_is_not_stored(
    client: TestClient, runtime: Runtime
) -> None:
    block = {"user_id": "bob", "target_user_id": "alice", "action": "block"}
    assert client.post("/v1/interactions", json=block).status_code == 200
    status, body = _post(client, SEED_MATCH)
    assert status == 200, body
    assert body["matches_created"] == [] and body["matches_refused"] == 1
    assert body["written"] == 0 and body["duplicates"] == 0
    assert _count(runtime, Match) == 0
    assert _count(runtime, Interaction, Interaction.action == "match") == 0
    # a block in the same batch, before or after the match, refuses it too
    carl_blocks = {"user_id": "carl", "target_user_id": "alice", "action": "block"}
    status, body = _post(client, {**SEED_MATCH, "user_b_id": "carl"}, carl_blocks)
    assert status == 200 and body["matches_refused"] == 1
    assert _count(runtime, Interaction, Interaction.action == "match") == 0


def test_impression_of_items_without_candidate_kind(client: TestClient, runtime: Runtime) -> None:
    impression = {"event_type": "impression", "user_id": "alice",
                  "candidate_ids": ["e1", "e2"], "positions": [1, 2]}  # fmt: skip
    status, body = _post(client, impression)
    assert status == 200, body
    assert body["written"] == 2
    with runtime.read_session() as s:
        rows = s.execute(select(Interaction.item_id, Interaction.target_user_id)
                         .where(Interaction.action == "impression")).all()  # fmt: skip
    assert sorted(rows) == [("e1", None), ("e2", None)]
    # people are inferred as people
    people = {**impression, "candidate_ids": ["bob", "carl"], "positions": None}
    status, body = _post(client, people)
    assert status == 200 and body["written"] == 2


@pytest.mark.parametrize(
    ("candidates", "said"),
    [
        (["e1", "nobody"], "'nobody' is neither a known user nor item"),
        (["bob", "e1"], "mixes users"),
        (["twin"], "'twin' is both a user and an item"),
    ],
)
def test_impression_that_cannot_be_inferred_says_what_to_add(
    client: TestClient, runtime: Runtime, candidates: list[str], said: str
) -> None:
    with runtime.session() as s:
        upsert_users(s, [people_fixture()[1].model_copy(update={"id": "twin"})])
        upsert_items(s, [ItemIn(id="twin", title="Twin")])
    impression = {"event_type": "impression", "user_id": "alice", "candidate_ids": candidates}
    status, body = _post(client, impression)
    assert status == 422, body
    assert said in body["message"]
    assert "add candidate_kind ('user' or 'item')" in body["message"]
    assert _count(runtime, Interaction) == 0
    # saying the kind settles it
    if candidates == ["twin"]:
        status, body = _post(client, {**impression, "candidate_kind": "item"})
        assert status == 200 and body["written"] == 1
