"""Keys, erasure, retention and exports: what operators steer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matchwise.cli.render import (
    console,
    open_runtime,
)
from matchwise.errors import InvalidInput
from matchwise.ops import privacy
from matchwise.ops.auth import create_key, list_keys, revoke_key
from matchwise.ops.privacy import export_events, run_retention

export_app = typer.Typer(help="Analytics exports with hashed user ids.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys with scopes ingest, read, admin.", no_args_is_help=True)
users_app = typer.Typer(help="People in the store: erasure.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="ingest, read or admin (admin implies the others)")],
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print JSON: id, scope, name, created_at and the key")
    ] = False,
) -> None:
    """Create a key; it is printed once and stored only as a hash."""

    runtime = open_runtime()
    with runtime.session() as session:
        key, row = create_key(session, scope, name=name)
        fields = {"id": row.id, "scope": row.scope, "name": row.name,
                  "created_at": row.created_at.isoformat(), "key": key}  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(fields) + "\n")
        return
    console.print(f"key id {fields['id']} (scope {scope}); keep the key, it is not shown again:")
    sys.stdout.write(key + "\n")


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="key id or the key itself")]) -> None:
    """Revoke a key (takes effect on running servers within 30 s)."""

    runtime = open_runtime()
    with runtime.session() as session:
        row = revoke_key(session, ident)
        key_id = row.id
    console.print(f"[green]revoked[/green] key {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Keys with scope and state (never the keys themselves)."""

    runtime = open_runtime()
    with runtime.session() as session:
        rows = list_keys(session)
    table = Table(title="API keys")
    for col in ("id", "scope", "name", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        revoked = r.revoked_at.strftime("%Y-%m-%d %H:%M") if r.revoked_at else ""
        table.add_row(r.id, r.scope, r.name or "", r.created_at.strftime("%Y-%m-%d %H:%M"), revoked)
    console.print(table)


@users_app.command("erase")
def users_erase(
    user_id: Annotated[str, typer.Argument(help="the user's id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Erase a person for good: profile, events, matches, reports, flags, cached lists,
    their id in the audit log, jobs and Redis, their bio's cached embedding. Trained
    models forget them at the next retrain."""
    out = privacy.erase_user(open_runtime(), user_id, actor="cli")
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    rows = ", ".join(f"{n:,} {table}" for table, n in out["deleted"].items())
    console.print(f"[green]erased[/green] {user_id}: deleted {rows}")
    if out["scrubbed"]:
        console.print("rewritten without them: " + ", ".join(
            f"{n:,} {table}" for table, n in out["scrubbed"].items()))  # fmt: skip
    console.print(f"text cache: {out['text_cache']} vector(s); Redis: {out['online_keys']} "
                  f"key(s); audit log keeps {out['tombstone']}")  # fmt: skip
    console.print(
        "trained models keep them until the next retrain (`matchwise jobs enqueue retrain`)"
    )


def retention(
    days: Annotated[
        int | None, typer.Option(help="window; default settings.retention_days")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="events deleted per transaction")] = 5000,
) -> None:
    """Delete raw events older than the retention window (keeping daily aggregates, blocks
    and matches) and model versions older than model_retention_days."""

    runtime = open_runtime()
    window = days or runtime.settings.retention_days
    if window < 1:
        raise InvalidInput("--days must be at least 1")
    stats = run_retention(runtime, retention_days=window, batch_size=batch_size)
    console.print(f"deleted {stats['deleted']:,} events older than {window} days and "
                  f"{stats.get('models_pruned', 0):,} old model versions")  # fmt: skip


@export_app.command("events")
def export_events_cmd(
    output: Annotated[Path, typer.Option(help="CSV or Parquet file to write")],
    days: Annotated[int | None, typer.Option(help="only the last N days")] = None,
) -> None:
    """Interaction events for analytics; user ids are keyed hashes (HMAC), never raw."""
    from datetime import UTC, datetime, timedelta

    if output.suffix not in (".csv", ".parquet"):
        raise InvalidInput("--output must end in .csv or .parquet")
    runtime = open_runtime()
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    with runtime.session() as session:
        frame = export_events(session, runtime.settings.hash_secret, since)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_parquet(output, index=False)
    console.print(f"wrote {len(frame):,} events to {output}")
