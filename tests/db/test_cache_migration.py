"""Migration 0007: the recommendations cache keeps no foreign key to users (a refresh's
rows are not checked one by one), on both stores, going down and up again; rows of a
person the store does not hold are accepted, and erasing a person still empties their
cached lists (tests/ops/test_erasure*.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import inspect

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
