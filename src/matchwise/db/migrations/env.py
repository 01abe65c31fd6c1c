"""Alembic environment: the URL comes from the caller (matchwise.db.engine.upgrade).

On PostgreSQL the migrations run under a transaction-scoped advisory lock: replicas
started at once take turns, and the later ones find the schema at head and do nothing
(instead of creating the same tables twice and failing to start)."""

from alembic import context
from sqlalchemy import text

from matchwise.db.engine import create_engine_for
from matchwise.db.tables import Base

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK = 0x6D77_6D69  # "mwmi": one number every matchwise process agrees on


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine_for(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # released when this commits
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK})  # fmt: skip
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
