"""The store: migrations."""

from __future__ import annotations

import typer

from matchwise.cli.render import (
    console,
    open_runtime,
)
from matchwise.db.engine import create_engine_for, current_revision
from matchwise.errors import StoreUnavailable
from matchwise.redaction import redact
from matchwise.settings import load_settings

db_app = typer.Typer(help="The store: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the store (idempotent)."""
    runtime = open_runtime()
    console.print(f"[green]store is at revision {runtime.revision()}[/green]")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision. Reads only the migration table, so it answers
    on a store no migration has touched yet (a runtime would need the schema)."""
    url = load_settings().database_url
    engine = create_engine_for(url, "read")
    try:
        revision = current_revision(engine)
    except Exception as exc:  # connection refused, bad credentials, ...
        raise StoreUnavailable(redact(f"cannot open the store at {url}: {exc}")) from exc
    finally:
        engine.dispose()
    console.print(revision or "no schema yet: run `matchwise db upgrade`")
