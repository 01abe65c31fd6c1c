"""``POST /v1/events`` with batches of 1,000 on both stores: written with COPY (PostgreSQL)
or one executemany (SQLite) since issue 16, with the same guarantees as before: a retried
batch counts once, a bad event stores nothing and is named, times are stored as UTC,
Elo and matches move once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from matchwise.api import create_app
from matchwise.client import MatchwiseAPIError, MatchwiseClient
from matchwise.db.tables import Interaction, Match, User
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.factories import items_fixture, people_fixture

BERLIN_SUMMER = timezone(timedelta(hours=2))
WHEN = datetime(2026, 6, 1, 12, 0, tzinfo=BERLIN_SUMMER)


@pytest.fixture
def api(runtime: Runtime) -> Iterator[MatchwiseClient]:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as http:
        client = MatchwiseClient(api_key=key, http=http)
        client.upsert_users(people_fixture())
        client.upsert_items(items_fixture())
        yield client


def _batch(n: int = 1000) -> list[dict[str, Any]]:
    items = [i.id for i in items_fixture()]
    return [
        {"event_id": f"b{j}", "user_id": "alice", "item_id": items[j % len(items)],
         "action": "click" if j % 2 else "view", "position": j % 10 + 1,
         "timestamp": (WHEN + timedelta(seconds=j)).isoformat()}
        for j in range(n)
    ]  # fmt: skip


def _count(runtime: Runtime) -> int:
    with runtime.session() as s:
        return int(s.scalar(select(func.count()).select_from(Interaction)) or 0)


def test_a_retried_batch_of_1000_counts_once(api: MatchwiseClient, runtime: Runtime) -> None:
    first = api.send_events(_batch())
    assert (first.written, first.duplicates) == (1000, 0)
    with runtime.session() as s:  # staging the rows drew no ids of the table's own
        assert s.scalar(select(func.max(Interaction.id))) == 1000
    again = api.send_events(_batch())
    assert (again.written, again.duplicates) == (0, 1000)
    assert _count(runtime) == 1000
    with runtime.session() as s:
        row = s.scalars(select(Interaction).where(Interaction.event_id == "b7")).one()
    # 12:00:07 at UTC+2 is 10:00:07 UTC, as the ORM's insert stored it
    assert row.occurred_at == datetime(2026, 6, 1, 10, 0, 7, tzinfo=UTC)
    assert (row.user_id, row.action, row.position, row.sample_weight) == ("alice", "click", 8, 1.0)
    assert row.received_at is not None


def test_one_bad_event_in_1000_stores_nothing_and_is_named(
    api: MatchwiseClient, runtime: Runtime
) -> None:
    batch = _batch()
    batch[700]["item_id"] = "no-such-item"
    with pytest.raises(MatchwiseAPIError) as raised:
        api.send_events(batch)
    assert raised.value.status_code == 404
    assert raised.value.message == "events[700].item_id: unknown item 'no-such-item'"
    assert _count(runtime) == 0


def test_likes_in_a_big_batch_move_elo_and_match_once(
    api: MatchwiseClient, runtime: Runtime
) -> None:
    batch = _batch(998) + [
        {"event_id": "l1", "user_id": "alice", "target_user_id": "bob", "action": "like"},
        {"event_id": "l2", "user_id": "bob", "target_user_id": "alice", "action": "like"},
    ]
    first = api.send_events(batch)
    assert first.written == 1000 and first.matches_created == [("alice", "bob")]
    with runtime.session() as s:
        elo = s.scalar(select(User.elo).where(User.id == "bob"))
    again = api.send_events(batch)
    assert (again.written, again.matches_created) == (0, [])
    with runtime.session() as s:
        assert s.scalar(select(User.elo).where(User.id == "bob")) == elo
        assert s.scalar(select(func.count()).select_from(Match)) == 1
