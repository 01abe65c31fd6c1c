"""Cached lists kept in an API server's memory (``db.copies``). PostgreSQL: a second
read is answered from memory; a swipe through this server leaves its copy before the
answer; a swipe, a re-made list or a hidden candidate written by another process reaches
the copy by its change notice; copies go out of use while the listener is cut off.
SQLite: a copy is answered only while nothing at all was committed since.

Rows are rewritten behind the servers' back (plain SQL, no notice) to tell a copy from a
database read: a copy still shows the old reasons, a read from the database the new."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from matchwise.api import create_app
from matchwise.db.notify import LISTENER_NAME, listen, listener_dsn, lists_changed, received
from matchwise.db.online import note_seen, note_visibility
from matchwise.ingest.events import record_interaction
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from matchwise.serve.cache import pack
from matchwise.serve.refresh import refresh_users
from matchwise.serve.types import RecommendationList
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture, person
from tests.utils.waiting import until

#: A notice takes milliseconds; the margin is for a loaded CI machine.
WITHIN = 3.0
BEHIND = text("UPDATE recommendations SET reason = :reason WHERE user_id = :user")


def _until(check: Callable[[], bool], within: float = WITHIN) -> bool:
    return until(check, within)


@pytest.fixture
def store(pg_runtime: Runtime) -> Runtime:
    with pg_runtime.session() as s:
        upsert_users(s, [*people_fixture(), person("dora", age=31)])
        upsert_items(s, items_fixture())
    refresh_users(pg_runtime, ["alice", "bob"], top_n=20, kind="user")
    return pg_runtime


@pytest.fixture
def sqlite_store(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"))
    runtime = Runtime.open(settings, migrate=False)
    with runtime.session() as s:
        upsert_users(s, [*people_fixture(), person("dora", age=31)])
    refresh_users(runtime, ["alice", "bob"], top_n=20, kind="user")
    yield runtime
    runtime.close()


@pytest.fixture
def writer(store: Runtime) -> Iterator[Runtime]:
    """Another process on the same store (a second server, the CLI, a worker)."""
    other = Runtime.open(store.settings, migrate=False)
    yield other
    other.close()


@pytest.fixture
def client(store: Runtime) -> Iterator[TestClient]:
    """The API on ``store``, its listener hearing the database."""
    with store.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    with TestClient(create_app(runtime=store)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        assert _until(lambda: store.list_copies.enabled), "the listener never heard the store"
        yield client


def _body(client: TestClient, user: str) -> dict[str, Any]:
    params = {"user_id": user, "kind": "user", "limit": 20}
    response = client.get("/v1/recommendations", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _served(client: TestClient, user: str) -> tuple[str, list[str], set[str]]:
    body = _body(client, user)
    recs = body["recommendations"]
    return body["route"], [r["candidate_id"] for r in recs], {r["reason"] for r in recs}


def _made_at(client: TestClient, user: str) -> str:
    return str(_body(client, user)["generated_at"])


def _behind_its_back(runtime: Runtime, user: str, reason: str) -> None:
    with runtime.engine.begin() as conn:
        assert conn.execute(BEHIND, {"reason": reason, "user": user}).rowcount > 0


def _kept(store: Runtime, client: TestClient, user: str, mark: str = "rewritten") -> list[str]:
    """Read ``user``'s list twice, the second time from memory (its rows rewritten with
    the reason ``mark`` in between); its candidates."""
    route, first, reasons = _served(client, user)
    assert mark not in reasons, "use a new mark"
    assert route == "cache" and first
    _behind_its_back(store, user, mark)
    hits = store.list_copies.hits
    route, again, reasons = _served(client, user)
    assert (route, again) == ("cache", first)
    assert mark not in reasons, "the second read went to the database"
    assert store.list_copies.hits == hits + 1
    return first


@pytest.mark.postgres
def test_a_swipe_through_this_server_leaves_its_copy_before_the_answer(
    store: Runtime, client: TestClient
) -> None:
    before = _kept(store, client, "alice")
    assert "bob" in before
    swipe = {"user_id": "alice", "target_user_id": "bob", "action": "pass"}
    assert client.post("/v1/interactions", json=swipe).status_code == 200
    route, after, reasons = _served(client, "alice")  # at once: no waiting for the notice
    assert route == "cache" and "bob" not in after
    assert reasons == {"rewritten"}  # read from the database again


@pytest.mark.postgres
def test_changes_written_by_another_process_reach_the_copies_by_notice(
    store: Runtime, writer: Runtime, client: TestClient
) -> None:
    # a swipe on another server: she passes on bob
    assert "bob" in _kept(store, client, "alice")
    with writer.session() as s:
        record_interaction(s, InteractionIn(user_id="alice", target_user_id="bob",
                                            action="pass"), writer.settings)  # fmt: skip
    assert _until(lambda: "bob" not in _served(client, "alice")[1]), "the swipe never arrived"
    assert _served(client, "alice")[2] == {"rewritten"}

    # someone refused a user elsewhere: she leaves his list
    assert "dora" in _kept(store, client, "bob", "bob's")
    with writer.session() as s:
        record_interaction(s, InteractionIn(user_id="dora", target_user_id="bob",
                                            action="reject"), writer.settings)  # fmt: skip
    assert _until(lambda: "dora" not in _served(client, "bob")[1]), "the refusal never arrived"

    # a list re-made elsewhere (a refresh job): the new one is served
    _kept(store, client, "alice", "before the refresh")
    made = _made_at(client, "alice")
    refresh_users(writer, ["alice"], top_n=20, kind="user")
    assert _until(lambda: _made_at(client, "alice") != made), "the old list is still served"

    # a candidate hidden elsewhere (deactivated): every copy holding him goes
    kept = _kept(store, client, "alice", "before the hiding")
    gone = kept[0]
    with writer.session() as s:
        upsert_users(s, [person(gone, gender="man", seeking=["woman"], active=False)])
    assert _until(lambda: gone not in _served(client, "alice")[1]), "a hidden one still shown"
    _kept(store, client, "alice", "while hidden")  # a copy made while he was hidden ...
    with writer.session() as s:  # ... and he is back
        upsert_users(s, [person(gone, gender="man", seeking=["woman"], active=True)])
    assert _until(lambda: gone in _served(client, "alice")[1]), "shown again nowhere"


@pytest.mark.postgres
def test_copies_go_out_of_use_while_the_listener_is_cut_off(
    store: Runtime, client: TestClient
) -> None:
    _kept(store, client, "alice")
    kept = _served(client, "alice")[2]  # the copy's reasons (the rows say "rewritten")
    assert kept != {"rewritten"}
    with store.engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = :name AND datname = current_database()"),
                     {"name": LISTENER_NAME})  # fmt: skip
    # the copy made before is never answered again: the next read goes to the database
    assert _until(lambda: _served(client, "alice")[2] == {"rewritten"})
    assert _until(lambda: store.list_copies.enabled), "the listener did not come back"
    for _ in range(3):  # a copy made since the cut may answer; the one from before never
        assert _served(client, "alice")[2] == {"rewritten"}


@pytest.mark.postgres
def test_with_redis_the_copy_answers_first_and_a_swipe_still_leaves_it(
    store: Runtime, redis_url: str
) -> None:
    settings = store.settings.model_copy(update={"redis_url": redis_url})
    runtime = Runtime.open(settings, migrate=False)
    try:
        refresh_users(runtime, ["alice"], top_n=20, kind="user")  # into Redis too
        with runtime.session() as s:
            key, _ = create_key(s, "admin", name="tests")
        with TestClient(create_app(runtime=runtime)) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            assert _until(lambda: runtime.list_copies.enabled)
            reader = client.app.state.online_reader  # type: ignore[attr-defined]
            route, first, _ = _served(client, "alice")
            asked = reader.attempts
            assert route == "cache" and "bob" in first
            assert _served(client, "alice")[1] == first
            assert reader.attempts == asked  # from memory: Redis was not asked
            swipe = {"user_id": "alice", "target_user_id": "bob", "action": "pass"}
            assert client.post("/v1/interactions", json=swipe).status_code == 200
            route, after, _ = _served(client, "alice")
            assert route == "cache" and "bob" not in after
            assert reader.attempts == asked + 1  # the copy was dropped: Redis again
    finally:
        runtime.close()


def test_on_sqlite_a_copy_is_answered_while_nothing_was_committed(
    sqlite_store: Runtime,
) -> None:
    runtime = sqlite_store
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    other = Runtime.open(runtime.settings, migrate=False)  # another process: the CLI, say
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            route, first, _ = _served(client, "alice")
            hits = runtime.list_copies.hits
            assert route == "cache" and "bob" in first
            assert _served(client, "alice")[1] == first
            assert runtime.list_copies.hits == hits + 1  # answered from memory
            with other.session() as s:
                record_interaction(s, InteractionIn(user_id="alice", target_user_id="bob",
                                                    action="pass"), other.settings)  # fmt: skip
            route, after, _ = _served(client, "alice")  # at once: the stamp changed
            assert route == "cache" and "bob" not in after
            assert _served(client, "alice")[1] == after
            with sqlite3.connect(runtime.settings.database_url.split("///", 1)[1]) as raw:
                raw.execute("UPDATE recommendations SET reason = 'by hand'")
            assert _served(client, "alice")[2] == {"by hand"}  # any commit, by anyone
    finally:
        other.close()


def test_this_process_drops_its_own_copies_at_commit(runtime: Runtime) -> None:
    """Without any listener (SQLite too): the runtime's write sessions drop what they
    changed right after their commit, and nothing for a rollback."""
    copies = runtime.list_copies
    copies.heard()
    listed = RecommendationList("alice", "cache", "v1", datetime.now(UTC))

    def keep(user: str, held: tuple[str, ...]) -> None:
        assert copies.keep(user, ("user", 20), pack(listed), held, copies.turn())

    keep("alice", ("bob", "carl"))
    keep("dora", ("ivan",))
    with pytest.raises(RuntimeError), runtime.session() as s:
        note_seen(s, "user", [("alice", "bob")])
        raise RuntimeError("rolled back")
    assert copies.get("alice", ("user", 20)) is not None
    with runtime.session() as s:
        note_seen(s, "user", [("alice", "bob")])
        assert copies.get("alice", ("user", 20)) is not None  # not before the commit
    assert copies.get("alice", ("user", 20)) is None
    keep("alice", ("bob", "carl"))
    with runtime.session() as s:
        note_visibility(s, "user", ["ivan"])
    assert copies.get("dora", ("user", 20)) is None
    assert copies.get("alice", ("user", 20)) is not None


@pytest.mark.postgres
def test_a_notice_naming_too_many_says_all(pg_runtime: Runtime) -> None:
    connection = listen(listener_dsn(pg_runtime.engine))
    try:
        with pg_runtime.session() as s:
            lists_changed(s, users=["someone"])
        with pg_runtime.session() as s:
            lists_changed(s, users=[f"user-{n:040d}" for n in range(500)])
        notices = []
        deadline = time.monotonic() + WITHIN
        while len(notices) < 2 and time.monotonic() < deadline:
            notices += list(received(connection, 0.2))
    finally:
        connection.close()
    assert [(n.topic, n.users, n.everything) for n in notices] == [
        ("lists", ("someone",), False),
        ("lists", (), True),
    ]
