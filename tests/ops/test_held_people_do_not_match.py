"""Moderation holds matches too: while a person is held for review or removed, a mutual
like or a match the app reports makes no match with them (lists hid them already; the
match did not wait). A moderator's approval makes the matches their likes had earned;
a removal never does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.data.bundle import DataBundle
from matchwise.db.tables import Match
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.profiles import upsert_users
from matchwise.runtime import Runtime
from tests.utils.factories import person
from tests.utils.moderation import hold, moderator_client

PEOPLE = [person("alice"), person("f1", gender="man", seeking=["woman"], age=31),
          person("f2", gender="man", seeking=["woman"], age=33)]  # fmt: skip


@pytest.fixture
def people(runtime: Runtime) -> Iterator[Runtime]:
    with runtime.session() as s:
        upsert_users(s, PEOPLE)
    yield runtime


def _act(client: TestClient, actor: str, target: str, action: str = "like") -> bool:
    body = {"user_id": actor, "target_user_id": target, "action": action}
    answer = client.post("/v1/interactions", json=body)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["match_created"])


def _pairs(runtime: Runtime) -> set[tuple[str, str]]:
    with runtime.read_session() as s:
        return {(m.user_a, m.user_b) for m in s.scalars(select(Match))}


def _decide(client: TestClient, flag_id: int, decision: str) -> None:
    body = {"flag_id": flag_id, "decision": decision}
    answer = client.post("/v1/admin/moderation", json=body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("decision", ["approve", "remove"])
def test_a_held_person_matches_no_one_until_approved(people: Runtime, decision: str) -> None:
    flag = hold(people, "f1")
    with moderator_client(people) as client:
        assert not _act(client, "alice", "f1")
        assert not _act(client, "f1", "alice")  # mutual, but f1 is held
        reported = {"event_type": "match", "user_id": "alice", "matched_user_id": "f1"}
        answer = client.post("/v1/events", json={"events": [reported]})
        assert answer.status_code == 200 and answer.json()["matches_created"] == []
        assert not _act(client, "alice", "f2") and _act(client, "f2", "alice")  # not held
        assert _pairs(people) == {("alice", "f2")}
        _decide(client, flag, decision)
    expected = {("alice", "f2"), ("alice", "f1")} if decision == "approve" else {("alice", "f2")}
    assert _pairs(people) == expected


def test_a_removed_person_matches_no_one_in_a_bulk_load(people: Runtime) -> None:
    with moderator_client(people) as client:
        _decide(client, hold(people, "f1"), "remove")
    rows = [("e1", "alice", "f1", "like"), ("e2", "f1", "alice", "like"),
            ("e3", "alice", "f2", "like"), ("e4", "f2", "alice", "like")]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["event_id", "user_id", "target_user_id", "action"])
    frame["occurred_at"] = pd.Timestamp.now(tz="UTC")
    bundle = DataBundle(pd.DataFrame(columns=["id"]), pd.DataFrame(columns=["id"]), frame, "log")
    write_bundle(people, bundle, people.settings.action_table)
    assert _pairs(people) == {("alice", "f2")}
