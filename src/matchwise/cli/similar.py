"""``matchwise similar``: items like an item or people like a person, as
``GET /v1/items/{id}/similar`` and ``GET /v1/users/{id}/similar`` list them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from matchwise.cli.render import console, open_runtime
from matchwise.errors import InvalidInput
from matchwise.serve.similar import similar_items, similar_users
from matchwise.serve.types import RecommendFilters


def similar(
    item_id: Annotated[str | None, typer.Option("--item-id", help="items like this item")] = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="people like this person")
    ] = None,
    limit: Annotated[int, typer.Option(help="how many at most (1-100)")] = 10,
    include_past: Annotated[
        bool, typer.Option("--include-past", help="items: also those already started")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """More like this: from the active model's vectors, or from co-occurrence when no
    loaded model knows the id (the output says which)."""
    if (item_id is None) == (user_id is None):
        raise InvalidInput("give one of --item-id or --user-id")
    if not 1 <= limit <= 100:
        raise InvalidInput("--limit must be between 1 and 100")
    runtime = open_runtime()
    with runtime.read_session() as session:
        if item_id is not None:
            filters = RecommendFilters(include_past=include_past)
            out = similar_items(runtime, session, item_id, limit, filters)
        else:
            out = similar_users(runtime, session, str(user_id), limit)
    if as_json:
        sys.stdout.write(out.model_dump_json() + "\n")
        return
    source = f"model {out.model_type} {out.model_version}" if out.model_type else out.source
    table = Table(title=f"like {out.id} (from {source})")
    for column in ("#", "candidate", "score"):
        table.add_column(column, justify="right" if column != "candidate" else "left")
    for c in out.similar:
        label = c.candidate_id if not c.title else f"{c.title} ({c.candidate_id})"
        table.add_row(str(c.rank), label, f"{c.score:.3f}")
    if not out.similar:
        table.caption = "nothing alike yet: no model knows it and no one shares its interactions"
    console.print(table)
