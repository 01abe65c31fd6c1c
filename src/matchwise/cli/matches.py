"""``matchwise matches``: a person's matches, as ``GET /v1/users/{id}/matches`` lists them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from matchwise.cli.render import console, open_runtime
from matchwise.errors import InvalidInput
from matchwise.serve.matches import matches_of


def matches(
    user_id: Annotated[str, typer.Option("--user-id", "--user_id", help="whose matches")],
    limit: Annotated[int, typer.Option(help="matches per page (1-1000)")] = 100,
    offset: Annotated[int, typer.Option(help="matches to skip (a previous next_offset)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A user's matches, newest first: the other person, when, and how the match came
    about. People not shown now and anyone blocked are never listed."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("--limit must be between 1 and 1000")
    if offset < 0:
        raise InvalidInput("--offset must be 0 or more")
    runtime = open_runtime()
    with runtime.read_session() as session:
        out = matches_of(session, user_id, limit, offset)
    if as_json:
        sys.stdout.write(out.model_dump_json() + "\n")
        return
    table = Table(title=f"matches of {user_id} ({out.total} in all)")
    for column in ("matched", "with", "how"):
        table.add_column(column)
    for m in out.matches:
        table.add_row(m.matched_at.strftime("%Y-%m-%d %H:%M"), m.user_id, m.match_type)
    if not out.matches:
        table.caption = "no matches yet" if out.total == 0 else "no more matches"
    elif out.next_offset is not None:
        table.caption = f"more: --offset {out.next_offset}"
    console.print(table)
