"""API replicas started at once on one empty PostgreSQL database both come up: the
migrations take a lock, so the second waits for the first and then finds nothing to do
(without it both create the same tables and one start fails)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from matchwise.db.tables import Base
from matchwise.runtime import Runtime
from matchwise.settings import Settings

pytestmark = pytest.mark.postgres


def _fresh_database(server_url: str, name: str) -> str:
    admin = create_engine(make_url(server_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def test_replicas_starting_at_once_all_migrate(postgres_url: str) -> None:
    """Four processes (alembic keeps its context in a module global: replicas are
    processes, so threads would not model them) upgrade one empty database at once."""
    url = _fresh_database(postgres_url, "matchwise_migration_race")
    start = "from matchwise.db.engine import upgrade; import sys; upgrade(sys.argv[1])"
    replicas = [
        subprocess.Popen([sys.executable, "-c", start, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = [err for p in replicas if (err := p.communicate(timeout=300)[1]) and p.returncode]
    assert failures == []
    runtime = Runtime.open(Settings(database_url=url), migrate=False)
    try:
        with runtime.read_session() as s:
            names = set(s.execute(text("SELECT tablename FROM pg_tables")).scalars())
        assert {t.name for t in Base.metadata.sorted_tables} <= names
        assert runtime.revision() is not None
    finally:
        runtime.close()
