"""A block is absolute and a pending like is the liker's secret.

- A block, in either direction, before or after any like, prevents any match, ends one
  already made, and hides both people from each other on every path at once (live,
  database cache, Redis, the active reciprocal model's route and the fallback that serves
  when no model does), including the blocked person's cached list.
- No reason names a pending like by default; the ranking boost a like gives is a setting,
  and at 0 a like changes nothing another can observe in the liked person's list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from matchwise.api import create_app
from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate_people
from matchwise.db.tables import Interaction, Match
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.profiles import upsert_users
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.ops.auth import create_key
from matchwise.ops.privacy import run_retention
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import serving_state
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.utils.factories import person

ALICE_AND_FRIENDS = [person("alice"), person("f1", gender="man", seeking=["woman"], age=31),
                     person("f2", gender="man", seeking=["woman"], age=33)]  # fmt: skip


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _act(client: TestClient, actor: str, target: str, action: str) -> dict:
    body = {"user_id": actor, "target_user_id": target, "action": action}
    response = client.post("/v1/interactions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _matches(runtime: Runtime) -> int:
    with runtime.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(Match)) or 0)


def _listed(client: TestClient, user: str, **extra: object) -> dict[str, dict]:
    params = {"user_id": user, "kind": "user", "limit": 50, **extra}
    body = client.get("/v1/recommendations", params=params).json()
    return {r["candidate_id"]: r for r in body["recommendations"]}


@pytest.fixture
def people(runtime: Runtime) -> Iterator[Runtime]:
    with runtime.session() as s:
        upsert_users(s, ALICE_AND_FRIENDS)
    yield runtime


@pytest.mark.parametrize(
    "steps",
    [
        [("alice", "f1", "like"), ("alice", "f1", "block"), ("f1", "alice", "like")],
        [("alice", "f1", "like"), ("f1", "alice", "block"), ("f1", "alice", "like")],
        [("alice", "f1", "block"), ("f1", "alice", "like"), ("alice", "f1", "like")],
        [("f1", "alice", "block"), ("alice", "f1", "superlike"), ("f1", "alice", "like")],
    ],
)
def test_a_block_prevents_any_match(people: Runtime, steps: list[tuple[str, str, str]]) -> None:
    with _client(people) as client:
        for actor, target, action in steps:
            assert not _act(client, actor, target, action)["match_created"]
        # an app reporting the match itself is refused too
        reported = {"event_type": "match", "user_id": "alice", "matched_user_id": "f1"}
        answer = client.post("/v1/events", json={"events": [reported]})
        assert answer.status_code == 200 and answer.json()["matches_created"] == []
    assert _matches(people) == 0


def test_a_block_ends_a_match_already_made(people: Runtime) -> None:
    with _client(people) as client:
        _act(client, "alice", "f1", "like")
        assert _act(client, "f1", "alice", "like")["match_created"]
        assert _matches(people) == 1
        _act(client, "f1", "alice", "block")
    assert _matches(people) == 0
    with people.read_session() as s:
        left = s.scalar(select(func.count()).select_from(Interaction)
                        .where(Interaction.action == "match"))  # fmt: skip
    assert left == 0


@pytest.fixture(params=["database", "redis"])
def cached(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Runtime]:
    if request.param == "redis":
        settings = settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    runtime = Runtime.open(settings, migrate=False)
    with runtime.session() as s:
        upsert_users(s, ALICE_AND_FRIENDS)
    yield runtime
    runtime.close()


def test_a_block_hides_both_people_on_every_path_at_once(cached: Runtime) -> None:
    refresh_users(cached, ["alice", "f1", "f2"], top_n=20, kind="user")
    with _client(cached) as client:
        assert "f1" in _listed(client, "alice") and "alice" in _listed(client, "f1")
        _act(client, "alice", "f1", "block")
        for who, gone in (("alice", "f1"), ("f1", "alice")):
            assert gone not in _listed(client, who)  # cached (Redis or the database)
            assert gone not in _listed(client, who, fresh=True)  # live
        assert "f2" in _listed(client, "alice")  # nobody else is touched


def generated_people(runtime: Runtime) -> list[str]:
    """A small generated dating population with swipes in ``runtime``'s store; returns
    the people with at least five swipes (warm or hot: a model or the fallback serves
    them), most active first."""
    bundle = generate_people(n_users=120, n_swipes=1200, seed=8)
    write_bundle(runtime, bundle, runtime.settings.action_table, elo=runtime.settings.elo)
    counts = bundle.interactions["user_id"].value_counts()
    return [str(u) for u in counts.index[counts >= 5]]


def served(client: TestClient, user: str, fresh: bool = True) -> tuple[str, str, list[str]]:
    """(route, model version, every candidate) of ``user``'s people list."""
    params = {"user_id": user, "kind": "user", "limit": 1000, "fresh": fresh}
    response = client.get("/v1/recommendations", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return (
        body["route"],
        body["model_version"],
        [r["candidate_id"] for r in body["recommendations"]],
    )


def mutual_pair(
    client: TestClient, users: list[str], routes: set[str], version: str
) -> tuple[str, str]:
    """Two of ``users`` who see each other in lists that ``version`` served on one of
    ``routes`` (seeing each other, neither has decided on the other)."""
    lists: dict[str, tuple[str, str, list[str]]] = {}

    def on_route(user: str) -> list[str]:
        if user not in lists:
            lists[user] = served(client, user)
        route, got, ids = lists[user]
        return ids if route in routes and got == version else []

    chosen = set(users)
    for a in users:
        for b in on_route(a):
            if b in chosen and a in on_route(b):
                return a, b
    raise AssertionError(f"no two people see each other on {routes} served by {version}")


def test_a_block_hides_both_people_on_the_model_and_fallback_routes(runtime: Runtime) -> None:
    """The people route ranked by the active reciprocal model, and the fallback that serves
    warm and hot people while no people model is active, both drop a blocked pair at once;
    likes after the block make no match."""
    users = generated_people(runtime)
    with _client(runtime) as client:
        for routes, model in (({"fallback"}, None), ({"warm", "hot"}, "reciprocal")):
            version = HEURISTIC_VERSION
            if model is not None:
                version = train_model(runtime, model, domain="people", activate="always").version
                serving_state(runtime).invalidate()
            a, b = mutual_pair(client, users, routes, version)
            _act(client, a, b, "block")
            for who, gone in ((a, b), (b, a)):
                route, got, ids = served(client, who)
                assert route in routes and got == version  # still served on that route
                assert gone not in ids
            assert not _act(client, b, a, "like")["match_created"]
            assert not _act(client, a, b, "like")["match_created"]
            with runtime.read_session() as s:
                pair = Match.user_a.in_([a, b]) & Match.user_b.in_([a, b])
                assert s.scalar(select(func.count()).select_from(Match).where(pair)) == 0


def test_a_bulk_load_makes_no_match_across_a_block(people: Runtime) -> None:
    now = pd.Timestamp.now(tz="UTC")
    rows = [("e1", "alice", "f1", "like"), ("e2", "f1", "alice", "block"),
            ("e3", "f1", "alice", "like"), ("e4", "alice", "f2", "like"),
            ("e5", "f2", "alice", "like")]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["event_id", "user_id", "target_user_id", "action"])
    frame["occurred_at"] = now
    bundle = DataBundle(pd.DataFrame(columns=["id"]), pd.DataFrame(columns=["id"]), frame, "log")
    write_bundle(people, bundle, people.settings.action_table)
    with people.read_session() as s:
        pairs = {(m.user_a, m.user_b) for m in s.scalars(select(Match))}
    assert pairs == {("alice", "f2")}


def test_no_reason_names_a_pending_like_and_the_boost_can_be_turned_off(
    settings: Settings,
) -> None:
    def bob_sees_alice(boost: float | None) -> tuple[float, float, str]:
        update = {} if boost is None else {"liked_me_boost": boost}
        runtime = Runtime.open(settings.model_copy(update=update), migrate=False)
        try:
            with runtime.session() as s:
                upsert_users(s, [person("alice"), person("bob", gender="man", seeking=["woman"]),
                                 person("carol", age=29)])  # fmt: skip
            with _client(runtime) as client:
                before = _listed(client, "bob", fresh=True)["alice"]["score"]
                _act(client, "alice", "bob", "like")
                after = _listed(client, "bob", fresh=True)["alice"]
            return before, after["score"], after["reason"]
        finally:
            with runtime.session() as s:  # the next round starts from an empty store
                s.execute(Interaction.__table__.delete())
                s.execute(Match.__table__.delete())
            runtime.close()

    before, after, reason = bob_sees_alice(None)
    assert after > before  # the documented boost: a like back makes a match
    assert "likes you" not in reason
    before, after, reason = bob_sees_alice(0.0)
    assert after == before  # turned off: the list says nothing about alice's like
    assert "likes you" not in reason


def test_retention_never_forgets_a_block(people: Runtime) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    with _client(people) as client:
        blocked = {"user_id": "alice", "target_user_id": "f1", "action": "block",
                   "timestamp": old.isoformat()}  # fmt: skip
        passed = {"user_id": "alice", "target_user_id": "f2", "action": "pass",
                  "timestamp": old.isoformat()}  # fmt: skip
        assert client.post("/v1/events", json={"events": [blocked, passed]}).status_code == 200
        stats = run_retention(people, retention_days=90)
        assert stats["deleted"] == 1  # the old pass goes, the block stays
        _act(client, "alice", "f1", "like")
        assert not _act(client, "f1", "alice", "like")["match_created"]
        assert "f1" not in _listed(client, "alice", fresh=True)
        assert "f2" in _listed(client, "alice", fresh=True)  # a pass is forgotten with time
