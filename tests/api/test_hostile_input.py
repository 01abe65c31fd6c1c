"""Limits and odd input get a clear 4xx, never a 5xx, and nothing of them is stored; the
API key is checked before the body is read. On both stores: PostgreSQL is the one that
refused out-of-range integers and NUL characters with a 500 before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from matchwise.api import create_app
from matchwise.db.engine import create_engine_for
from matchwise.db.tables import Interaction, ModerationFlag, User
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.ops.moderation import flag_profile
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture

JSON = {"content-type": "application/json"}


@pytest.fixture
def small_batches(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.open(settings.model_copy(update={"max_batch_size": 5}), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    yield runtime
    runtime.close()


def _client(runtime: Runtime, scope: str = "admin") -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, scope, name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.fixture
def client(small_batches: Runtime) -> Iterator[TestClient]:
    with _client(small_batches) as c:
        yield c


def _stored(runtime: Runtime, table: Any) -> int:
    with runtime.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def _refused(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["message"]
    for word in words:
        assert word in message, message


def test_a_batch_over_max_batch_size_is_413_before_validation(
    client: TestClient, small_batches: Runtime
) -> None:
    events = [{"user_id": "alice", "item_id": "e1", "action": "click"}] * 6
    _refused(client.post("/v1/events", json={"events": events}), 413,
             "events: 6 in one batch", "max_batch_size (5)")  # fmt: skip
    # refused by its size alone: six invalid events are not even looked at
    bad = [{"user_id": "alice", "action": "teleport", "position": -1}] * 6
    _refused(client.post("/v1/events", json={"events": bad}), 413, "max_batch_size")
    users = [{"id": f"u{n}"} for n in range(6)]
    _refused(client.post("/v1/users", json={"users": users}), 413, "users: 6")
    assert _stored(small_batches, Interaction) == 0
    ok = client.post("/v1/events", json={"events": events[:5]})
    assert ok.status_code == 200 and ok.json()["written"] == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("position", 2**31), ("duration_ms", 2**31), ("position", -1), ("value", 1e308 * 10)],
)
def test_numbers_the_store_cannot_hold_are_422(
    client: TestClient, small_batches: Runtime, field: str, value: Any
) -> None:
    event_ = {"user_id": "alice", "item_id": "e1", "action": "click", field: value}
    if value == float("inf"):  # not JSON at all: the body is refused as such
        body = b'{"user_id": "alice", "item_id": "e1", "action": "click", "value": 1e999}'
        _refused(client.post("/v1/interactions", content=body, headers=JSON), 400, "infinity")
    else:
        _refused(client.post("/v1/interactions", json=event_), 422, field)
    assert _stored(small_batches, Interaction) == 0


def test_nan_and_infinity_tokens_are_not_json(client: TestClient, small_batches: Runtime) -> None:
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"user_id": "alice", "item_id": "e1", "action": "rate", "value": ' + token + b"}"
        _refused(client.post("/v1/interactions", content=body, headers=JSON), 400,
                 "body is not valid JSON")  # fmt: skip
    assert _stored(small_batches, Interaction) == 0


def test_a_moderation_flag_id_beyond_64_bits_is_422(client: TestClient) -> None:
    big = {"flag_id": 2**63, "decision": "approve"}
    _refused(client.post("/v1/admin/moderation", json=big), 422, "flag_id")
    assert client.post("/v1/admin/moderation", json={**big, "flag_id": 2**62}).status_code == 404


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T00:00:00Z"]
)
def test_times_at_the_edge_of_the_calendar_are_422(
    client: TestClient, small_batches: Runtime, when: str
) -> None:
    event_ = {"user_id": "alice", "item_id": "e1", "action": "click", "timestamp": when}
    _refused(client.post("/v1/events", json={"events": [event_]}), 422, "timestamp", "outside")
    item = {"id": "e9", "starts_at": when}
    _refused(client.post("/v1/items", json={"items": [item]}), 422, "starts_at")
    swipes = {"event_type": "swipe_batch", "user_id": "alice", "timestamp": when,
              "swipes": [{"candidate_id": "bob", "action": "like"}]}  # fmt: skip
    _refused(client.post("/v1/events", json={"events": [swipes]}), 422, "timestamp")
    assert _stored(small_batches, Interaction) == 0


@pytest.mark.parametrize(
    "user",
    [
        {"id": "nul", "bio": "hello\x00world"},
        {"id": "nul", "name": "\x00"},
        {"id": "nul", "attributes": {"job": "a\x00b"}},
        {"id": "nul", "attributes": {"a\x00": 1}},
        {"id": "nul", "tags": ["x\x00"]},
    ],
)
def test_nul_characters_are_422_naming_the_field(
    client: TestClient, small_batches: Runtime, user: dict[str, Any]
) -> None:
    _refused(client.post("/v1/users", json={"users": [user]}), 422, "NUL")
    with small_batches.read_session() as s:
        assert s.get(User, "nul") is None


def test_booleans_must_be_booleans(client: TestClient) -> None:
    for value in (0, 1, "yes"):
        _refused(client.post("/v1/users", json={"users": [{"id": "b", "active": value}]}), 422,
                 "active")  # fmt: skip
        _refused(client.post("/v1/items", json={"items": [{"id": "i", "active": value}]}), 422,
                 "active")  # fmt: skip
    label = {"text": "hi", "label": "spam_scam", "value": 1}
    _refused(client.post("/v1/admin/safety/labels", json=label), 422, "value")
    assert (
        client.post("/v1/users", json={"users": [{"id": "b", "active": False}]}).status_code == 200
    )


@pytest.mark.parametrize("born", ["0001-01-01", "2999-01-01", "2020-06-01"])
def test_a_birth_date_giving_an_impossible_age_is_422(client: TestClient, born: str) -> None:
    _refused(client.post("/v1/users", json={"users": [{"id": "kid", "birth_date": born}]}), 422,
             "birth_date", "gives age")  # fmt: skip


def test_invalid_utf8_and_deep_json_are_400_saying_why(client: TestClient) -> None:
    utf8 = b'{"users": [{"id": "a", "bio": "\xff\xfe"}]}'
    _refused(client.post("/v1/users", content=utf8, headers=JSON), 400, "UTF-8")
    deep = b'{"users": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    _refused(client.post("/v1/users", content=deep, headers=JSON), 400, "nested deeper")


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ["'
        for _ in range(17):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    _refused(client.post("/v1/events", content=chunks(), headers=JSON), 413, "over")


def test_the_key_is_checked_before_the_body_is_read(small_batches: Runtime) -> None:
    app = create_app(runtime=small_batches)
    with TestClient(app, raise_server_exceptions=False) as anonymous:
        malformed = anonymous.post("/v1/events", content=b"{not json", headers=JSON)
        assert malformed.status_code == 401  # not 400: nothing about the body is revealed
        huge = anonymous.post("/v1/events", json={"events": [{}] * 50})
        assert huge.status_code == 401  # not 413
    with _client(small_batches, "read") as reader:
        assert reader.post("/v1/events", content=b"{not json", headers=JSON).status_code == 403


def test_resolving_a_flag_reads_one_flag_not_the_queue(
    small_batches: Runtime, client: TestClient
) -> None:
    with small_batches.session() as s:
        upsert_users(s, [people_fixture()[0].model_copy(update={"id": f"f{n}"})
                         for n in range(60)])  # fmt: skip
    with small_batches.session() as s:
        for n in range(60):
            flag_profile(s, f"f{n}", "reports", {"reports": 3})
    with small_batches.read_session() as s:
        last = int(s.scalar(select(func.max(ModerationFlag.id))) or 0)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(small_batches.engine, "before_cursor_execute", count)
    try:
        answer = client.post("/v1/admin/moderation", json={"flag_id": last, "decision": "remove"})
    finally:
        event.remove(small_batches.engine, "before_cursor_execute", count)
    assert answer.status_code == 200 and answer.json()["status"] == "removed"
    assert answer.json()["reports"] == 0
    flag_reads = [q for q in statements if "FROM moderation_flags" in q]
    assert len(flag_reads) <= 2, flag_reads  # the one flag, not all 60 with their reports


@pytest.mark.postgres
def test_an_exhausted_pool_is_503_with_retry_after(postgres_url: str, tmp_path: Any) -> None:
    settings = Settings(database_url=postgres_url, artifact_root=str(tmp_path / "a"))
    tight = create_engine_for(settings.database_url, "read", pool_size=1, max_overflow=0,
                              pool_timeout=0.2)  # fmt: skip
    plain = Runtime.open(settings, migrate=False)
    runtime = Runtime(settings, plain.engine, tight)
    try:
        with _client(runtime) as client:
            assert client.get("/v1/admin/moderation").status_code == 200  # the key is known
            with tight.connect():  # the read pool's only connection is taken
                busy = client.get("/v1/admin/moderation")
    finally:
        tight.dispose()
        plain.close()
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"] == "store_unavailable"
    assert "busy" in busy.json()["message"]
