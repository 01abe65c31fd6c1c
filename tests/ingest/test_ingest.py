"""Ingestion on both backends: all-or-nothing batches, dedupe by event id, matches."""

from __future__ import annotations

import threading

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select

from matchwise.data.movielens import read_movielens
from matchwise.data.synthetic import generate_people
from matchwise.db.tables import Interaction, Item, Match, User
from matchwise.errors import InvalidInput, NotFound
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import Event
from tests.conftest import MOVIELENS_100K
from tests.utils.factories import NOW, items_fixture, people_fixture

EVENTS = TypeAdapter(list[Event])


def _seed(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())


def _count(runtime: Runtime, model: type = Interaction) -> int:
    with runtime.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _ingest(runtime: Runtime, raw: list[dict]) -> object:
    with runtime.session() as s:
        return ingest_events(s, EVENTS.validate_python(raw), runtime.settings.action_table, NOW)


BATCH = [
    {"event_type": "interaction", "event_id": "a1", "user_id": "alice", "item_id": "e1",
     "action": "click", "timestamp": "2026-05-01T10:00:00Z"},
    {"event_type": "impression", "event_id": "imp1", "user_id": "alice",
     "candidate_ids": ["bob", "carl"], "positions": [1, 2]},
    {"event_type": "swipe_batch", "event_id": "sw1", "user_id": "alice", "session_id": "s1",
     "swipes": [{"candidate_id": "bob", "action": "like", "duration_ms": 2500},
                {"candidate_id": "carl", "action": "pass", "duration_ms": 800}]},
]  # fmt: skip


def test_retried_batch_is_not_double_counted(runtime: Runtime) -> None:
    _seed(runtime)
    first = _ingest(runtime, BATCH)
    assert first.written == 5 and first.duplicates == 0
    again = _ingest(runtime, BATCH)
    assert again.written == 0 and again.duplicates == 5
    assert _count(runtime) == 5


def test_batch_with_one_bad_event_is_rejected_whole(runtime: Runtime) -> None:
    _seed(runtime)
    bad = [*BATCH, {"event_type": "interaction", "user_id": "alice", "item_id": "e2",
                    "action": "teleport"}]  # fmt: skip
    with pytest.raises(InvalidInput, match=r"events\[3\]\.action: unknown action 'teleport'"):
        _ingest(runtime, bad)
    assert _count(runtime) == 0


def test_unknown_user_and_item_are_named(runtime: Runtime) -> None:
    _seed(runtime)
    with pytest.raises(NotFound, match=r"events\[0\]\.user_id: unknown user 'zoe'"):
        _ingest(runtime, [{"user_id": "zoe", "item_id": "e1", "action": "click"}])
    with pytest.raises(NotFound, match=r"events\[1\]\.item_id: unknown item 'nope'"):
        _ingest(runtime, [BATCH[0], {"user_id": "alice", "item_id": "nope", "action": "click"}])
    with pytest.raises(NotFound, match=r"swipes\[0\]\.candidate_id: unknown user 'ghost'"):
        _ingest(runtime, [{"event_type": "swipe_batch", "user_id": "alice",
                           "swipes": [{"candidate_id": "ghost", "action": "like"}]}])  # fmt: skip
    assert _count(runtime) == 0


def test_events_without_ids_but_with_timestamps_dedupe_by_content(runtime: Runtime) -> None:
    _seed(runtime)
    event = {"user_id": "alice", "item_id": "e2", "action": "view",
             "timestamp": "2026-05-02T10:00:00+02:00"}  # fmt: skip
    assert _ingest(runtime, [event]).written == 1
    assert _ingest(runtime, [event]).written == 0


def test_mutual_like_creates_one_match(runtime: Runtime) -> None:
    _seed(runtime)
    first = _ingest(runtime, [{"user_id": "alice", "target_user_id": "bob", "action": "like"}])
    assert first.matches_created == []
    second = _ingest(runtime, [{"user_id": "bob", "target_user_id": "alice",
                                "action": "superlike"}])  # fmt: skip
    assert second.matches_created == [("alice", "bob")]
    third = _ingest(runtime, [{"user_id": "bob", "target_user_id": "alice", "action": "like"}])
    assert third.matches_created == []
    assert _count(runtime, Match) == 1
    with runtime.session() as s:
        events = s.scalars(select(Interaction).where(Interaction.action == "match")).all()
    assert [(e.user_id, e.target_user_id) for e in events] == [("alice", "bob")]


@pytest.mark.postgres
def test_simultaneous_mutual_likes_create_exactly_one_match(pg_runtime: Runtime) -> None:
    rt = pg_runtime
    _seed(rt)
    for round_ in range(10):
        a, b = "ivan", "alice"
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def like(
            actor: str,
            target: str,
            r: int = round_,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait()
                _ingest(rt, [{"event_id": f"{actor}-{r}", "user_id": actor,
                              "target_user_id": target, "action": "like"}])  # fmt: skip
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=like, args=(a, b)),
                   threading.Thread(target=like, args=(b, a))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert _count(rt, Match) == 1, f"round {round_}"
        with rt.session() as s:
            s.execute(Match.__table__.delete())
            s.execute(Interaction.__table__.delete())


def test_upsert_users_reports_created_and_updated(runtime: Runtime) -> None:
    with runtime.session() as s:
        first = upsert_users(s, people_fixture()[:2])
    assert (first.created, first.updated) == (2, 0)
    changed = people_fixture()[:3]
    changed[0] = changed[0].model_copy(update={"bio": "new bio"})
    with runtime.session() as s:
        second = upsert_users(s, changed)
    assert (second.created, second.updated) == (1, 2)
    with runtime.session() as s:
        assert s.get(User, "alice").bio == "new bio"


def test_duplicate_ids_in_one_batch_are_rejected(runtime: Runtime) -> None:
    users = people_fixture()[:2]
    with runtime.session() as s, pytest.raises(InvalidInput, match=r"users\[1\]\.id: 'alice'"):
        upsert_users(s, [users[0], users[0]])


def test_bulk_load_creates_matches_from_mutual_likes(runtime: Runtime) -> None:

    bundle = generate_people(n_users=150, n_swipes=3000, seed=11)
    stats = write_bundle(runtime, bundle, runtime.settings.action_table)
    likes = bundle.interactions[bundle.interactions["action"].isin(["like", "superlike"])]
    pairs = set(zip(likes["user_id"], likes["target_user_id"], strict=True))
    mutual = {tuple(sorted(p)) for p in pairs if (p[1], p[0]) in pairs}
    assert stats["matches"] == len(mutual) > 0
    with runtime.session() as s:
        stored = {(m.user_a, m.user_b) for m in s.scalars(select(Match))}
    assert stored == mutual
    again = write_bundle(runtime, bundle, runtime.settings.action_table)
    assert again["matches"] == 0 and again["interactions"] == 0


@pytest.mark.skipif(not MOVIELENS_100K.is_dir(), reason="MovieLens 100K is not in SHARED_DATA")
def test_movielens_100k_loads_into_the_store(runtime: Runtime) -> None:
    bundle = read_movielens(MOVIELENS_100K)
    stats = write_bundle(runtime, bundle, runtime.settings.action_table)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert (_count(runtime, User), _count(runtime, Item), _count(runtime)) == (943, 1682, 100_000)
    with runtime.session() as s:
        rated = s.scalar(select(func.avg(Interaction.value)))
    assert 3.5 < rated < 3.6  # MovieLens 100K's mean rating is 3.53
