"""Migration 0005 (experiments) goes up and down on both stores, and the tables it makes
are the ones the code maps."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from matchwise.db.engine import alembic_config, create_engine_for, current_revision, upgrade


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_0005_up_and_down(db_url: str) -> None:
    assert {"experiments", "experiment_teams"} <= _tables(db_url)
    assert {"experiment", "arm"} <= _columns(db_url, "interactions")
    try:
        command.downgrade(alembic_config(db_url), "0004")
        assert not {"experiments", "experiment_teams"} & _tables(db_url)
        assert not {"experiment", "arm"} & _columns(db_url, "interactions")
        engine = create_engine_for(db_url)
        assert current_revision(engine) == "0004"
        engine.dispose()
    finally:
        upgrade(db_url)  # the session's PostgreSQL store is shared: leave it at head
    assert {"experiments", "experiment_teams"} <= _tables(db_url)
    assert {"experiment", "arm"} <= _columns(db_url, "interactions")
