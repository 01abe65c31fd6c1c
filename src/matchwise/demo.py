"""``matchwise demo``: the main job end to end on the embedded default (SQLite, local files)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select

from matchwise.data.bundle import DataBundle
from matchwise.db.tables import Interaction, Item, Match, User
from matchwise.runtime import Runtime
from matchwise.settings import load_settings

SIZES = {"small", "medium", "large"}


def prefix_ids(bundle: DataBundle, user_prefix: str) -> DataBundle:
    """Namespace user ids so two generated domains can share one store."""

    def fix(value: Any) -> Any:
        return value if value is None or value != value else f"{user_prefix}{value}"

    users = bundle.users.copy()
    users["id"] = users["id"].map(fix)
    inter = bundle.interactions.copy()
    inter["user_id"] = inter["user_id"].map(fix)
    if "target_user_id" in inter:
        inter["target_user_id"] = inter["target_user_id"].map(fix)
    inter["event_id"] = user_prefix + inter["event_id"].astype(str)
    return DataBundle(users, bundle.items, inter, bundle.name, bundle.domain, bundle.meta)


def run_demo(console: Console, size: str = "small", seed: int = 42) -> dict[str, Any]:
    from matchwise.cli import print_recommendations
    from matchwise.data.synthetic import generate
    from matchwise.ingest import write_bundle
    from matchwise.recommend import recommend

    settings = load_settings()
    runtime = Runtime.open(settings)
    console.rule("[bold]matchwise demo")
    console.print(f"store: [cyan]{settings.database_url}[/cyan]")
    console.print(f"artifacts: [cyan]{settings.artifact_root}[/cyan]")

    started = time.perf_counter()
    with console.status("generating synthetic events (items domain) and people (dating)..."):
        # the window ends today, so upcoming events are upcoming for real
        start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
        items_bundle = generate("items", size=size, seed=seed, start=start)
        people_bundle = generate("people", size="small", seed=seed, start=start)
    with console.status("writing the store..."):
        write_bundle(runtime.engine, items_bundle, settings.action_table)
        write_bundle(runtime.engine, people_bundle, settings.action_table)
    with runtime.session() as session:
        counts = {
            "users": session.scalar(select(func.count()).select_from(User)),
            "items": session.scalar(select(func.count()).select_from(Item)),
            "interactions": session.scalar(select(func.count()).select_from(Interaction)),
            "matches": session.scalar(select(func.count()).select_from(Match)),
        }
    table = Table(title="the store")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, value in counts.items():
        table.add_row(name, f"{value:,}")
    console.print(table)

    item_users = list(items_bundle.users["id"].astype(str).head(2))
    people_users = list(people_bundle.users["id"].astype(str).head(2))
    with runtime.session() as session:
        for user_id in item_users:
            print_recommendations(recommend(session, settings, user_id, limit=5, kind="item"))
        for user_id in people_users:
            print_recommendations(recommend(session, settings, user_id, limit=5, kind="user"))
    elapsed = time.perf_counter() - started
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"done in {elapsed:.1f} s. Where to look next:",
                    f"  .venv/bin/matchwise recommend --user-id {item_users[0]} --top-n 10",
                    f"  .venv/bin/matchwise recommend --user-id {people_users[0]} "
                    "--kind user --json",
                    f"  .venv/bin/matchwise interact --user-id {people_users[0]} --target "
                    f"{people_users[1]} --action like",
                    "  .venv/bin/matchwise serve   then open http://127.0.0.1:8000/docs",
                ]
            ),
            title="next",
        )
    )
    runtime.close()
    return {"counts": counts, "seconds": elapsed}
