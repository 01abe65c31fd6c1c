"""The store: migrations."""

from __future__ import annotations

import typer

from matchwise.cli.render import (
    console,
    open_runtime,
)
from matchwise.runtime import Runtime
from matchwise.settings import load_settings

db_app = typer.Typer(help="The store: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the store (idempotent)."""
    runtime = open_runtime()
    console.print(f"[green]store is at revision {runtime.revision()}[/green]")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision."""
    settings = load_settings()
    runtime = Runtime.open(settings, migrate=False)
    console.print(runtime.revision() or "no schema yet: run `matchwise db upgrade`")
