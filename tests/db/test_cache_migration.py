"""Migrations 0007, 0008 and 0009: the recommendations cache keeps no foreign key to users
(a refresh's rows are not checked one by one) and one index, its key (user, kind, rank), on
both stores, going down and up again with the rows kept; rows of a person the store does
not hold are accepted, and erasing a person still empties their cached lists
(tests/ops/test_erasure*.py); PostgreSQL's planner expects a list's worth of rows a person
however its sample of the table fell (0009)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text

from matchwise.db.engine import alembic_config, create_engine_for, upgrade
from matchwise.db.tables import Recommendation
from matchwise.runtime import Runtime
from matchwise.serve.refresh import write_caches
from matchwise.serve.types import Recommendation as Served
from matchwise.serve.types import RecommendationList
from matchwise.settings import Settings


def _foreign_keys(url: str) -> list[Any]:
    engine = create_engine_for(url)
    try:
        return list(inspect(engine).get_foreign_keys("recommendations"))
    finally:
        engine.dispose()


def test_the_cache_has_no_foreign_key_up_and_down(db_url: str) -> None:
    assert _foreign_keys(db_url) == []
    try:
        command.downgrade(alembic_config(db_url), "0006")
        assert [fk["referred_table"] for fk in _foreign_keys(db_url)] == ["users"]
    finally:
        upgrade(db_url)  # the session's PostgreSQL store is shared: leave it at head
    assert _foreign_keys(db_url) == []


def _keys(url: str) -> tuple[list[str], list[str]]:
    """The cache's primary key columns and its other indexes' names."""
    engine = create_engine_for(url)
    try:
        found = inspect(engine)
        return (found.get_pk_constraint("recommendations")["constrained_columns"],
                sorted(i["name"] for i in found.get_indexes("recommendations")))  # fmt: skip
    finally:
        engine.dispose()


def _rows(url: str) -> set[tuple[Any, ...]]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT user_id, candidate_id, candidate_kind, "
                                            "rank, reason FROM recommendations"))  # fmt: skip
            return set(found)
    finally:
        engine.dispose()


def test_the_cache_is_keyed_by_rank_up_and_down_keeping_its_rows(
    db_url: str, tmp_path: Path
) -> None:
    assert _keys(db_url) == (["user_id", "candidate_kind", "rank"], [])
    key = ["user_id", "candidate_kind", "rank"]
    assert list(Recommendation.__table__.primary_key.columns.keys()) == key
    runtime = Runtime.open(Settings(database_url=db_url, artifact_root=str(tmp_path)),
                           migrate=False)  # fmt: skip
    try:
        now = datetime.now(UTC)
        lists = [RecommendationList(f"m{i}", "batch", "v1", now,
                                    [Served(f"{kind}{j}", kind, 0.5, j + 1, f"r{j}")
                                     for j in range(3)])
                 for i in range(2) for kind in ("user", "item")]  # fmt: skip
        with runtime.session() as session:  # a list of each kind, the same ranks
            write_caches(session, lists[0::2], "user")
            write_caches(session, lists[1::2], "item")
    finally:
        runtime.close()
    before = _rows(db_url)
    assert len(before) == 12
    try:
        command.downgrade(alembic_config(db_url), "0007")
        assert _keys(db_url) == (["user_id", "candidate_id"], ["ix_recommendations_user_rank"])
        assert _rows(db_url) == before
    finally:
        upgrade(db_url)  # the session's PostgreSQL store is shared: leave it at head
    assert _keys(db_url) == (["user_id", "candidate_kind", "rank"], [])
    assert _rows(db_url) == before


def test_a_list_repeating_a_rank_keeps_its_first_row_when_rekeyed(db_url: str) -> None:
    """A hand-made duplicate (user, kind, rank), which the old key allowed, does not stop
    the upgrade: the first row stays."""
    command.downgrade(alembic_config(db_url), "0007")
    try:
        engine = create_engine_for(db_url)
        try:
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM recommendations"))
                for candidate in ("first", "second"):
                    connection.execute(text(
                        "INSERT INTO recommendations (user_id, candidate_id, candidate_kind, "
                        "score, rank, model_version, route, reason, generated_at) VALUES "
                        "('dup', :c, 'user', 0.5, 1, 'v', 'batch', NULL, :at)"),
                        {"c": candidate, "at": datetime(2026, 12, 4)})  # fmt: skip
        finally:
            engine.dispose()
    finally:
        upgrade(db_url)
    assert _rows(db_url) == {("dup", "first", "user", 1, None)}


def test_a_refresh_writes_lists_without_checking_each_row(db_url: str, tmp_path: Path) -> None:
    runtime = Runtime.open(Settings(database_url=db_url, artifact_root=str(tmp_path)),
                           migrate=False)  # fmt: skip
    try:
        now = datetime.now(UTC)
        lists = [RecommendationList(f"u{i}", "batch", "v1", now,
                                    [Served(f"c{j}", "user", 0.5, j + 1, "a reason")
                                     for j in range(3)]) for i in range(4)]  # fmt: skip
        with runtime.session() as session:
            assert write_caches(session, lists, "user") == 12
        with runtime.session() as session:
            assert session.query(Recommendation).count() == 12
    finally:
        runtime.close()


def test_cached_rows_keep_every_character(db_url: str, tmp_path: Path) -> None:
    """The COPY text a refresh writes escapes what would end a field or a row: ids and
    reasons with tabs, newlines, backslashes and quotes come back as written."""
    runtime = Runtime.open(Settings(database_url=db_url, artifact_root=str(tmp_path)),
                           migrate=False)  # fmt: skip
    odd = ["tab\there", "line\nbreak", "back\\slash\\N", "quote'\"", "cr\rret", "ünï😀"]
    try:
        now = datetime.now(UTC)
        lists = [RecommendationList(user, "warm", "v\t1", now,
                                    [Served(c, "user", 0.1 + j / 3, j + 1, f"because {c}")
                                     for j, c in enumerate(odd)]) for user in odd]  # fmt: skip
        with runtime.session() as session:
            write_caches(session, lists, "user")
        with runtime.session() as session:
            got = {(r.user_id, r.candidate_id, r.reason, r.model_version, r.score, r.rank)
                   for r in session.query(Recommendation)}  # fmt: skip
        want = {(u, c, f"because {c}", "v\t1", 0.1 + j / 3, j + 1)
                for u in odd for j, c in enumerate(odd)}  # fmt: skip
        assert got == want
    finally:
        runtime.close()


def _rows_expected_for_one_person(url: str) -> float:
    """The planner's estimate of one person's cached rows after an ANALYZE that samples 300
    rows (statistics target 1), few for the table's pages, as 30,000 are at a million
    people's 50 million rows."""
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL default_statistics_target = 1"))
            connection.execute(text("ANALYZE recommendations"))
            plan = connection.execute(text(
                "EXPLAIN (FORMAT JSON) SELECT * FROM recommendations "
                "WHERE user_id = 'p7' AND candidate_kind = 'user'")).scalar_one()  # fmt: skip
            return float(plan[0]["Plan"]["Plan Rows"])
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_planner_expects_a_list_a_person_however_its_sample_fell(
    postgres_url: str,
) -> None:
    """ANALYZE samples pages, and a person's rows share one or two: on a large cache its
    sample repeats people and it guessed ~1,300 rows each at a million people, which made a
    refresh block's delete a scan of the whole table (7 s instead of 0.1 s). A small
    sample of a 500,000-row cache (300 rows) draws the same wrong
    picture; with 0009 the estimate is a list, with 0008 it is many."""
    engine = create_engine_for(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM recommendations"))
            connection.execute(
                text(
                    "INSERT INTO recommendations (user_id, candidate_id, candidate_kind, score, "
                    "rank, model_version, route, reason, generated_at) "
                    "SELECT 'p' || (i / 50), 'c' || i, 'user', 0.5, i % 50 + 1, 'v1', 'batch', "
                    "'you both like hiking', now() FROM generate_series(0, 499999) AS i"
                )
            )
        assert 25 <= _rows_expected_for_one_person(postgres_url) <= 100
        command.downgrade(alembic_config(postgres_url), "0008")
        try:
            assert _rows_expected_for_one_person(postgres_url) > 200
        finally:
            upgrade(postgres_url)
        assert 25 <= _rows_expected_for_one_person(postgres_url) <= 100
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM recommendations"))
        engine.dispose()
