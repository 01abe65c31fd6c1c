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
