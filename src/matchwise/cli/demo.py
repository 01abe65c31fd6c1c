"""``matchwise demo``: the main job end to end on the embedded default (SQLite, local files)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select

from matchwise.cli.render import console, print_metrics, print_recommendations
from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate
from matchwise.db.tables import Interaction, Item, Match, User
from matchwise.ingest.bulk import write_bundle
from matchwise.models.catalog import MODEL_TYPES
from matchwise.ops.auth import create_key
from matchwise.redaction import redact
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import serving_state
from matchwise.settings import load_settings
from matchwise.train.pipeline import train_model

SIZES = {"small", "medium", "large"}


DEMO_MODELS = ("ease", "logistic", "two_tower", "reciprocal")


def _train(console: Console, runtime: Runtime, models: tuple[str, ...]) -> dict[str, Any]:
    """Train, evaluate against popularity, register and activate the demo's models."""

    out: dict[str, Any] = {}
    for name in models:
        if name not in MODEL_TYPES:
            continue
        domain = "people" if name == "reciprocal" else "items"
        with console.status(f"training {name} on the {domain} data..."):
            config = {"epochs": 15, "patience": 3} if name == "two_tower" else None
            result = train_model(runtime, name, domain=domain, activate="always",
                                 flags=None, config_path=None, actor="demo",
                                 config_overrides=config)  # fmt: skip
        print_metrics(f"{name} {result.version}", result.test)
        console.print(f"  {result.reason}; report: [cyan]{result.report_html}[/cyan]")
        out[name] = result
    serving_state(runtime).invalidate()
    return out


def _example_users(
    runtime: Runtime, items_bundle: DataBundle, people_bundle: DataBundle
) -> list[tuple[str, str]]:
    """A cold, a warm and a hot events user, and two dating users."""
    counts = items_bundle.interactions[items_bundle.interactions["action"] != "impression"]
    per_user = counts["user_id"].value_counts()
    cold_below = runtime.settings.router.cold_below
    hot_above = runtime.settings.router.hot_above
    picks: list[tuple[str, str]] = []
    for low, high in ((0, cold_below - 1), (cold_below, hot_above), (hot_above + 1, 10**9)):
        users = per_user[(per_user >= low) & (per_user <= high)]
        if len(users):
            picks.append((str(users.index[0]), "item"))
        elif low == 0:
            idle = set(items_bundle.users["id"]) - set(per_user.index)
            if idle:
                picks.append((sorted(idle)[0], "item"))
    swipes = people_bundle.interactions["user_id"].value_counts()
    picks += [(str(u), "user") for u in swipes.index[:2]]
    return picks


def run_demo(
    console: Console, size: str = "small", seed: int = 42, models: tuple[str, ...] = DEMO_MODELS
) -> dict[str, Any]:

    settings = load_settings()
    runtime = Runtime.open(settings)
    console.rule("[bold]matchwise demo")
    console.print(f"store: [cyan]{redact(settings.database_url)}[/cyan]")
    console.print(f"artifacts: [cyan]{settings.artifact_root}[/cyan]")

    started = time.perf_counter()
    with console.status("generating synthetic events (items domain) and people (dating)..."):
        # the window ends today, so upcoming events are upcoming for real
        start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
        items_bundle = generate("items", size=size, seed=seed, start=start)
        people_bundle = generate("people", size="small", seed=seed, start=start)
    with console.status("writing the store..."):
        write_bundle(runtime, items_bundle, settings.action_table)
        write_bundle(runtime, people_bundle, settings.action_table, elo=settings.elo)
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

    trained = _train(console, runtime, models)
    with console.status("refreshing every user's ranking cache..."):
        refreshed = refresh_users(runtime, None, top_n=20)
    console.print(f"ranking cache: {refreshed['rows']:,} rows for {refreshed['users']:,} users")

    with runtime.session() as session:
        key, _ = create_key(session, "admin", name="demo", actor="demo")
    examples = _example_users(runtime, items_bundle, people_bundle)
    with runtime.session() as session:
        for user_id, kind in examples:
            result = recommend(
                runtime,
                session,
                user_id,
                limit=5,
                kind=kind,  # type: ignore[arg-type]
                use_cache=False,
            )
            print_recommendations(result)
    elapsed = time.perf_counter() - started
    people = [u for u, kind in examples if kind == "user"]
    console.print(f"admin API key for this store (shown once): [bold]{key}[/bold]")
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"done in {elapsed:.1f} s. Where to look next:",
                    f"  .venv/bin/matchwise recommend --user-id {examples[0][0]} --top-n 10",
                    f"  .venv/bin/matchwise recommend --user-id {people[0]} --kind user --json",
                    f"  .venv/bin/matchwise interact --user-id {people[0]} --target "
                    f"{people[1]} --action like",
                    "  .venv/bin/matchwise models list",
                    "  .venv/bin/matchwise serve   then open http://127.0.0.1:8000/docs",
                    f"  curl -H 'X-API-Key: {key}' "
                    f"'http://127.0.0.1:8000/v1/recommendations?user_id={examples[0][0]}'",
                    f"  reports: {runtime.settings.artifact_root}/reports/",
                ]
            ),
            title="next",
        )
    )
    runtime.close()
    return {"counts": counts, "seconds": elapsed, "trained": trained, "api_key": key}


def demo(
    size: Annotated[str, typer.Option(help="small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
) -> None:
    """The main job on the embedded default: data, store, recommendations, summary."""

    run_demo(console, size=size, seed=seed)
