"""The safety classifier."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from matchwise.cli.render import (
    console,
    open_runtime,
)
from matchwise.errors import InvalidInput
from matchwise.ops.safety import classify, scan_profiles

safety_app = typer.Typer(
    help="Trust and safety: classify texts, scan profiles.", no_args_is_help=True
)


@safety_app.command("check")
def safety_check(
    text: Annotated[str | None, typer.Argument(help="the text to classify")] = None,
    profile_id: Annotated[str | None, typer.Option("--profile-id", help="a stored profile")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Per-label probabilities and decisions for a text and/or a profile."""

    if text is not None and len(text) > 10_000:
        raise InvalidInput("text is over 10,000 characters")
    result = classify(open_runtime(), text, profile_id)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title="safety check")
    for col in ("label", "probability", "flagged"):
        table.add_column(col)
    for label, p in result["probabilities"].items():
        flag = "[red]yes[/red]" if result["flags"].get(label) else "no"
        table.add_row(label, f"{p:.3f}", flag)
    console.print(table)


@safety_app.command("scan")
def safety_scan(
    user_id: Annotated[list[str] | None, typer.Option("--user-id", help="only these")] = None,
) -> None:
    """Classify stored profiles; hold flagged ones for review."""

    stats = scan_profiles(open_runtime(), user_id or None)
    console.print(f"scanned {stats['scanned']:,} profiles, held {stats['flagged']:,} for review")
