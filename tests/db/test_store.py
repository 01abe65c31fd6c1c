"""The store is the same on SQLite and PostgreSQL: schema, constraints, time zones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from matchwise.db.engine import upgrade
from matchwise.db.tables import Base, Interaction, Job, Match, ModelVersion, User
from matchwise.errors import Conflict
from matchwise.runtime import Runtime


@contextmanager
def _violates_a_constraint() -> Iterator[None]:
    """The store refused the write (a Conflict for callers, caused by the database's
    IntegrityError: the constraint itself did the refusing)."""
    with pytest.raises(Conflict) as caught:
        yield
    assert isinstance(caught.value.__cause__, IntegrityError)


def test_migrations_create_every_table(runtime: Runtime) -> None:
    names = set(inspect(runtime.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= names
    assert runtime.revision() is not None


def test_upgrade_is_idempotent(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)


def test_one_active_model_per_type(runtime: Runtime) -> None:
    with runtime.session() as s:
        s.add(ModelVersion(model_type="ranker", version="1", uri="a", is_active=True))
        s.add(ModelVersion(model_type="ranker", version="2", uri="b", is_active=False))
        s.add(ModelVersion(model_type="two_tower", version="1", uri="c", is_active=True))
    with _violates_a_constraint(), runtime.session() as s:
        s.add(ModelVersion(model_type="ranker", version="3", uri="d", is_active=True))


def test_one_open_job_per_dedupe_key(runtime: Runtime) -> None:
    with runtime.session() as s:
        s.add(Job(job_type="retrain", dedupe_key="retrain", status="done"))
        s.add(Job(job_type="retrain", dedupe_key="retrain", status="queued"))
    with _violates_a_constraint(), runtime.session() as s:
        s.add(Job(job_type="retrain", dedupe_key="retrain", status="running"))


def test_match_pairs_are_ordered_and_unique(runtime: Runtime) -> None:
    with runtime.session() as s:
        s.add_all([User(id="a"), User(id="b")])
    with _violates_a_constraint(), runtime.session() as s:
        s.add(Match(user_a="b", user_b="a"))
    with runtime.session() as s:
        s.add(Match(user_a="a", user_b="b"))
    with _violates_a_constraint(), runtime.session() as s:
        s.add(Match(user_a="a", user_b="b"))


def test_times_round_trip_as_utc(runtime: Runtime) -> None:
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with runtime.session() as s:
        s.add_all([User(id="a"), User(id="b")])
        s.flush()
        s.add(Interaction(event_id="t1", user_id="a", target_user_id="b", action="like",
                          occurred_at=local))  # fmt: skip
    with runtime.session() as s:
        got = s.scalar(select(Interaction.occurred_at))
    assert got == local and got.tzinfo == UTC


def test_interaction_cannot_target_user_and_item(runtime: Runtime) -> None:
    from matchwise.db.tables import Item

    with runtime.session() as s:
        s.add_all([User(id="a"), User(id="b"), Item(id="i")])
    with _violates_a_constraint(), runtime.session() as s:
        s.add(Interaction(event_id="x", user_id="a", target_user_id="b", item_id="i",
                          action="like", occurred_at=datetime.now(UTC)))  # fmt: skip
