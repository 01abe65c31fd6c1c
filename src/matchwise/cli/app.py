"""The ``matchwise`` command: thin Typer shells over the same functions the API calls."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from matchwise.api.server import uvicorn_options
from matchwise.errors import InvalidInput, MatchwiseError, NotFound
from matchwise.ops import privacy
from matchwise.redaction import redact, redact_logs
from matchwise.runtime import Runtime
from matchwise.settings import load_settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay one line: paths copy-paste

app = typer.Typer(
    name="matchwise",
    help="Recommendations and matching for matching apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store: migrations.", no_args_is_help=True)
load_app = typer.Typer(
    help="Import data: MovieLens, your own CSV/Parquet exports.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(load_app, name="load")


def _runtime() -> Runtime:
    return Runtime.open(load_settings())


# --- db ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the store (idempotent)."""
    runtime = _runtime()
    console.print(f"[green]store is at revision {runtime.revision()}[/green]")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision."""
    settings = load_settings()
    runtime = Runtime.open(settings, migrate=False)
    console.print(runtime.revision() or "no schema yet: run `matchwise db upgrade`")


# --- data ----------------------------------------------------------------------------


@app.command()
def generate(
    domain: Annotated[str, typer.Option(help="items or people")] = "items",
    size: Annotated[str, typer.Option(help="small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed: same seed, same data")] = 42,
) -> None:
    """Generate a realistic synthetic data set and write it to the store."""
    from matchwise.data.synthetic import generate as make

    if domain not in ("items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    if size not in ("small", "medium", "large"):
        raise InvalidInput(f"--size must be small, medium or large, not {size!r}")
    bundle = make(domain, size=size, seed=seed)
    _write_bundle(bundle)


def _write_bundle(
    bundle: Any, runtime: Runtime | None = None, source: Any = None
) -> dict[str, int]:
    """Write a bundle (all or nothing) and say what happened to every row of it."""
    from matchwise.ingest.bulk import write_bundle

    runtime = runtime or _runtime()
    with console.status(f"writing {len(bundle.interactions):,} interactions..."):
        stats = write_bundle(
            runtime,
            bundle,
            runtime.settings.action_table,
            elo=runtime.settings.elo,
            source=source,
        )
    table = Table(title=f"loaded {bundle.name}")
    for col in ("", "in file", "new in store"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("users", f"{len(bundle.users):,}", f"{stats['users']:,}")
    table.add_row("items", f"{len(bundle.items):,}", f"{stats['items']:,}")
    table.add_row("interactions", f"{len(bundle.interactions):,}", f"{stats['interactions']:,}")
    console.print(table)
    if len(bundle.interactions):
        console.print(
            f"interactions: {stats['duplicates']:,} skipped as duplicates "
            "(event id already stored or repeated)"
        )
    if stats.get("stamped"):
        console.print(
            f"interactions: {stats['stamped']:,} rows have no time; new ones got the load time"
        )
    return stats


@load_app.command("movielens")
def load_movielens(
    path: Annotated[Path, typer.Argument(help="folder of MovieLens 100K, 1M or latest")],
) -> None:
    """Load a MovieLens folder (layout detected: 100K, 1M or latest)."""
    from matchwise.data.movielens import read_movielens

    _write_bundle(read_movielens(path))


@load_app.command("speed-dating")
def load_speed_dating(
    path: Annotated[Path, typer.Argument(help="Speed Dating Experiment CSV (Fisman & Iyengar)")],
) -> None:
    """Load the Speed Dating Experiment: people, likes/passes, matches."""
    from matchwise.data.speed_dating import read_speed_dating

    _write_bundle(read_speed_dating(path))


@load_app.command("interactions")
def load_interactions(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file")],
    user_col: Annotated[str, typer.Option(help="column with the acting user's id")] = "user_id",
    item_col: Annotated[str | None, typer.Option(help="column with the item id")] = "item_id",
    target_user_col: Annotated[
        str | None, typer.Option(help="column with the target user's id (people domain)")
    ] = None,
    action_col: Annotated[str | None, typer.Option(help="column with the action")] = None,
    value_col: Annotated[str | None, typer.Option(help="column with a rating/value")] = None,
    time_col: Annotated[str | None, typer.Option(help="column with the time")] = None,
    default_action: Annotated[
        str | None, typer.Option(help="action for every row when there is no action column")
    ] = None,
) -> None:
    """Import your own interaction export; users and items it names are created if new.

    The file is checked whole before anything is written, then written in one
    transaction; rows without a time get the load time.
    """
    import pandas as pd

    from matchwise.data.bundle import DataBundle
    from matchwise.data.importers import read_interactions, row_numbering
    from matchwise.ingest.bulk import RowSource

    if target_user_col:
        item_col = None
    runtime = _runtime()
    actions = runtime.settings.action_table
    if default_action is not None and default_action.strip().lower() not in actions:
        known = ", ".join(sorted(actions))
        raise InvalidInput(f"--default-action: unknown action {default_action!r}; known: {known}")
    frame = read_interactions(
        path,
        user_col=user_col,
        item_col=item_col,
        target_user_col=target_user_col,
        action_col=action_col,
        value_col=value_col,
        time_col=time_col,
        default_action=default_action,
    )
    user_ids = set(frame["user_id"])
    if "target_user_id" in frame:
        user_ids |= set(frame["target_user_id"].dropna())
    item_ids = sorted(set(frame["item_id"].dropna())) if "item_id" in frame else []
    bundle = DataBundle(
        users=pd.DataFrame({"id": sorted(user_ids)}),
        items=pd.DataFrame({"id": item_ids}),
        interactions=frame,
        name=path.name,
    )
    columns = {
        "user_id": user_col,
        "item_id": item_col,
        "target_user_id": target_user_col,
        "action": action_col,
        "value": value_col,
        "occurred_at": time_col,
    }
    source = RowSource(
        str(path), *row_numbering(path), {k: v for k, v in columns.items() if v is not None}
    )
    _write_bundle(_only_new_entities(runtime, bundle), runtime, source)


def _only_new_entities(runtime: Runtime, bundle: Any) -> Any:
    """Keep profiles/items the store already has untouched when importing bare ids."""
    from matchwise.db.queries import existing_ids
    from matchwise.db.tables import Item, User

    with runtime.session() as session:
        users = existing_ids(session, User.id, list(bundle.users["id"]))
        items = existing_ids(session, Item.id, list(bundle.items["id"]))
    bundle.users = bundle.users[~bundle.users["id"].isin(users)]
    bundle.items = bundle.items[~bundle.items["id"].isin(items)]
    return bundle


@load_app.command("profiles")
def load_profiles(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of profiles")],
    id_col: Annotated[str, typer.Option(help="column with the user id")] = "id",
) -> None:
    """Import profiles; unknown columns are kept as attributes.

    Every row must pass what ``POST /v1/users`` accepts; the first that does not refuses
    the whole file with its line and column, and nothing is written.
    """
    import pandas as pd

    from matchwise.data.bundle import DataBundle
    from matchwise.data.importers import read_profiles

    users = read_profiles(path, id_col=id_col)
    _write_bundle(DataBundle(users, pd.DataFrame(columns=["id"]), _no_interactions(), path.name))


@load_app.command("items")
def load_items(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of items")],
    id_col: Annotated[str, typer.Option(help="column with the item id")] = "id",
) -> None:
    """Import items (events, startups, ...); unknown columns are kept as attributes.

    Every row must pass what ``POST /v1/items`` accepts; the first that does not refuses
    the whole file with its line and column, and nothing is written.
    """
    import pandas as pd

    from matchwise.data.bundle import DataBundle
    from matchwise.data.importers import read_items

    items = read_items(path, id_col=id_col)
    _write_bundle(DataBundle(pd.DataFrame(columns=["id"]), items, _no_interactions(), path.name))


def _no_interactions() -> Any:
    import pandas as pd

    return pd.DataFrame(columns=["event_id", "user_id", "item_id", "action", "occurred_at"])


# --- serving -------------------------------------------------------------------------


@app.command("recommend")
def recommend_cmd(
    user_id: Annotated[str, typer.Option("--user-id", "--user_id", help="who to recommend for")],
    top_n: Annotated[int, typer.Option("--top-n", "--top_n", help="how many")] = 10,
    kind: Annotated[
        str | None, typer.Option(help="item or user (default: settings.domain)")
    ] = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    city: Annotated[str | None, typer.Option(help="only this city")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommendations for one user, with scores and reasons."""
    from matchwise.serve.recommend import RecommendFilters, recommend

    if kind not in (None, "item", "user"):
        raise InvalidInput(f"--kind must be 'item' or 'user', not {kind!r}")
    if not 1 <= top_n <= 1000:
        raise InvalidInput("--top-n must be between 1 and 1000")
    runtime = _runtime()
    with runtime.session() as session:
        result = recommend(
            runtime,
            session,
            user_id,
            limit=top_n,
            kind=kind,  # type: ignore[arg-type]
            filters=RecommendFilters(category=category, city=city),
        )
    if as_json:
        rows = [
            {**r.wire(), "route": result.route, "model_version": result.model_version}
            for r in result.recommendations
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    print_recommendations(result)


def print_recommendations(result: Any) -> None:
    table = Table(
        title=f"for {result.user_id}  (route: {result.route}, model: {result.model_version})"
    )
    table.add_column("#", justify="right")
    table.add_column("candidate")
    table.add_column("score", justify="right")
    table.add_column("why")
    for r in result.recommendations:
        label = r.candidate_id if not r.title else f"{r.title} [dim]({r.candidate_id})[/dim]"
        table.add_row(str(r.rank), label, f"{r.score:.3f}", r.reason)
    if not result.recommendations:
        table.caption = "nothing to recommend: every candidate is filtered out"
    console.print(table)


@app.command()
def interact(
    user_id: Annotated[str, typer.Option("--user-id", "--user_id", help="who acts")],
    target: Annotated[str, typer.Option(help="the user or item acted on")],
    action: Annotated[str, typer.Option(help="like, superlike, reject, click, register, ...")],
    value: Annotated[float | None, typer.Option(help="a rating or value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Record an interaction (Patra's --interact); a mutual like creates a match."""
    from matchwise.ingest.events import record_interaction, resolve_target
    from matchwise.schemas import InteractionIn

    runtime = _runtime()
    with runtime.session() as session:
        prefer = "user" if runtime.settings.domain == "people" else "item"
        kind = resolve_target(session, target, prefer=prefer)
        interaction = InteractionIn(
            user_id=user_id,
            action=action,
            value=value,
            item_id=target if kind == "item" else None,
            target_user_id=target if kind == "user" else None,
        )
        out = record_interaction(session, interaction, runtime.settings)
    from matchwise.serve.refresh import refresh_users

    # Patra: the swipe (and the Elo it moved) shows in this user's next list at once
    refresh_users(runtime, [user_id], top_n=runtime.settings.default_top_n, kind=kind)  # type: ignore[arg-type]
    if as_json:
        sys.stdout.write(out.model_dump_json() + "\n")
        return
    console.print(f"[green]recorded[/green] {user_id} {action} {target}")
    if out.match_created:
        console.print(f"[bold magenta]it's a match:[/bold magenta] {user_id} and {target}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    runtime = _runtime()  # migrate once, and fail here with a clear message if the store is down
    runtime.close()
    options = uvicorn_options(runtime.settings if workers == 1 else None)
    redact_logs("uvicorn", "uvicorn.error", "uvicorn.access")
    uvicorn.run(
        "matchwise.api.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        **options,
    )


jobs_app = typer.Typer(
    help="The job queue: enqueue and inspect background work.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")


@app.command()
def refresh(
    user_id: Annotated[str | None, typer.Option("--user-id", help="only this user")] = None,
    top_n: Annotated[int, typer.Option("--top-n", help="list length per user")] = 50,
    skip_training: Annotated[
        bool,
        typer.Option(
            "--skip-training/--train",
            help="use the active models as they are (default), or retrain "
            "settings.retrain_models first and activate those that beat the active version",
        ),
    ] = True,
    kind: Annotated[str | None, typer.Option(help="item or user")] = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="fan the scoring out over Ray tasks (matchwise[scale])")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="join this Ray cluster ('auto', 'ray://host:10001'); default local"),
    ] = None,
) -> None:
    """Recompute the ranking cache for every active user, or one (seed 004's refresh)."""
    from rich.progress import Progress

    from matchwise.serve.refresh import refresh_users

    if kind not in (None, "item", "user"):
        raise InvalidInput(f"--kind must be 'item' or 'user', not {kind!r}")
    runtime = _runtime()
    if ray_address:  # for the training tasks as well as the refresh
        runtime.settings = runtime.settings.model_copy(update={"ray_address": ray_address})
    if not skip_training:
        from matchwise.train.pipeline import retrain

        outcome, _ = retrain(runtime, ray=ray or bool(ray_address))
        for name, summary in outcome.items():
            state = "activated" if summary["activated"] else "kept the active version"
            console.print(f"{name}: {summary['version']} {state} ({summary['reason']})")
    users = [user_id] if user_id else None
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("refreshing", total=None)
        if ray or ray_address:
            from matchwise.scale import refresh_with_ray

            stats = refresh_with_ray(runtime, users, top_n=top_n, kind=kind,  # type: ignore[arg-type]
                                     progress=lambda n: bar.advance(task, n))  # fmt: skip
        else:
            stats = refresh_users(runtime, users, top_n=top_n, kind=kind,  # type: ignore[arg-type]
                                  progress=lambda: bar.advance(task))  # fmt: skip
    console.print(
        f"[green]refreshed[/green] {stats['users']:,} users, {stats['rows']:,} cached rows"
    )


@app.command("mirror-cache")
def mirror_cache() -> None:
    """Copy the database's ranking cache into Redis (``redis_url``) without recomputing:
    for an online cache that was just added, restarted or flushed."""
    from matchwise.serve.online import mirror_database_cache

    written = mirror_database_cache(_runtime())
    console.print(f"[green]mirrored[/green] {written:,} cached lists into Redis")


@app.command()
def worker(
    lease_seconds: Annotated[float, typer.Option(help="lease length; renewed while running")] = 60,
    poll_seconds: Annotated[float, typer.Option(help="sleep when the queue is empty")] = 1.0,
    backoff_seconds: Annotated[float, typer.Option(help="first retry delay, then doubled")] = 30,
    max_jobs: Annotated[int | None, typer.Option(help="stop after this many jobs")] = None,
    until_idle: Annotated[bool, typer.Option(help="stop when the queue is empty")] = False,
) -> None:
    """Run queued jobs (retrain, refresh_user, retention) until stopped."""
    import signal

    from matchwise.jobs.worker import Worker, load_plugins

    load_plugins()
    runtime = _runtime()
    w = Worker(runtime, lease_seconds=lease_seconds, poll_seconds=poll_seconds,
               backoff_seconds=backoff_seconds)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    console.print(f"worker {w.worker_id} started")
    try:
        done = w.run(max_jobs=max_jobs, until_idle=until_idle)
    except KeyboardInterrupt:
        done = 0
    console.print(f"worker {w.worker_id} stopped after {done} jobs")


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: Annotated[str, typer.Argument(help="retrain, refresh_user or retention")],
    user_id: Annotated[str | None, typer.Option("--user-id", help="for refresh_user")] = None,
    top_n: Annotated[int, typer.Option("--top-n")] = 50,
    ray: Annotated[
        bool, typer.Option("--ray", help="retrain: one Ray task per model (matchwise[scale])")
    ] = False,
) -> None:
    """Queue a job; a second retrain is not queued while one is queued or running."""
    from matchwise.jobs.queue import enqueue
    from matchwise.jobs.worker import HANDLERS, load_plugins

    load_plugins()
    if kind not in HANDLERS:
        raise InvalidInput(f"unknown job type {kind!r}; known: {', '.join(sorted(HANDLERS))}")
    if kind == "refresh_user" and not user_id:
        raise InvalidInput("refresh_user needs --user-id")
    payload: dict[str, Any] = {"top_n": top_n}
    if ray:
        payload["ray"] = True
    if user_id:
        payload["user_id"] = user_id
    key = f"{kind}:{user_id}" if user_id else kind
    runtime = _runtime()
    with runtime.session() as session:
        job, created = enqueue(session, kind, payload, dedupe_key=key)
        job_id = job.id
    word = "queued" if created else "already queued or running"
    console.print(f"job {job_id} ({kind}) {word}")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, done or failed")] = None,
    limit: Annotated[int, typer.Option(help="how many")] = 30,
) -> None:
    """Recent jobs with their status, attempts and last error."""
    from matchwise.jobs.queue import list_jobs

    runtime = _runtime()
    with runtime.session() as session:
        rows = list_jobs(session, status=status, limit=limit)
    table = Table(title="jobs")
    for col in ("id", "type", "status", "attempts", "created", "worker", "last error"):
        table.add_column(col)
    for j in rows:
        error = (j.last_error or "").splitlines()[0][:60] if j.last_error else ""
        created = j.created_at.strftime("%Y-%m-%d %H:%M:%S")
        attempts = f"{j.attempts}/{j.max_attempts}"
        table.add_row(str(j.id), j.job_type, j.status, attempts, created, j.locked_by or "", error)
    console.print(table)


keys_app = typer.Typer(help="API keys with scopes ingest, read, admin.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="ingest, read or admin (admin implies the others)")],
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from matchwise.ops.auth import create_key

    runtime = _runtime()
    with runtime.session() as session:
        key, row = create_key(session, scope, name=name)
        key_id = row.id
    console.print(f"key id {key_id} (scope {scope}); keep the key, it is not shown again:")
    sys.stdout.write(key + "\n")


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="key id or the key itself")]) -> None:
    """Revoke a key (takes effect on running servers within 30 s)."""
    from matchwise.ops.auth import revoke_key

    runtime = _runtime()
    with runtime.session() as session:
        row = revoke_key(session, ident)
        key_id = row.id
    console.print(f"[green]revoked[/green] key {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Keys with scope and state (never the keys themselves)."""
    from matchwise.ops.auth import list_keys

    runtime = _runtime()
    with runtime.session() as session:
        rows = list_keys(session)
    table = Table(title="API keys")
    for col in ("id", "scope", "name", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        revoked = r.revoked_at.strftime("%Y-%m-%d %H:%M") if r.revoked_at else ""
        table.add_row(r.id, r.scope, r.name or "", r.created_at.strftime("%Y-%m-%d %H:%M"), revoked)
    console.print(table)


users_app = typer.Typer(help="People in the store: erasure.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("erase")
def users_erase(
    user_id: Annotated[str, typer.Argument(help="the user's id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Erase a person for good: profile, events, matches, reports, flags, cached lists,
    their id in the audit log, jobs and Redis, their bio's cached embedding. Trained
    models forget them at the next retrain."""
    out = privacy.erase_user(_runtime(), user_id, actor="cli")
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


@app.command()
def retention(
    days: Annotated[
        int | None, typer.Option(help="window; default settings.retention_days")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="events deleted per transaction")] = 5000,
) -> None:
    """Delete raw events older than the retention window (keeping daily aggregates, blocks
    and matches) and model versions older than model_retention_days."""
    from matchwise.ops.privacy import run_retention

    runtime = _runtime()
    window = days or runtime.settings.retention_days
    if window < 1:
        raise InvalidInput("--days must be at least 1")
    stats = run_retention(runtime, retention_days=window, batch_size=batch_size)
    console.print(f"deleted {stats['deleted']:,} events older than {window} days and "
                  f"{stats.get('models_pruned', 0):,} old model versions")  # fmt: skip


export_app = typer.Typer(help="Analytics exports with hashed user ids.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("events")
def export_events_cmd(
    output: Annotated[Path, typer.Option(help="CSV or Parquet file to write")],
    days: Annotated[int | None, typer.Option(help="only the last N days")] = None,
) -> None:
    """Interaction events for analytics; user ids are keyed hashes (HMAC), never raw."""
    from datetime import UTC, datetime, timedelta

    from matchwise.ops.privacy import export_events

    if output.suffix not in (".csv", ".parquet"):
        raise InvalidInput("--output must end in .csv or .parquet")
    runtime = _runtime()
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    with runtime.session() as session:
        frame = export_events(session, runtime.settings.hash_secret, since)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_parquet(output, index=False)
    console.print(f"wrote {len(frame):,} events to {output}")


dataset_app = typer.Typer(help="Training datasets: extract, label, split.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
bench_app = typer.Typer(help="Benchmarks against peer libraries.", no_args_is_help=True)
app.add_typer(bench_app, name="benchmark")


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(
            f"--split ratios must be numbers like 0.8,0.1,0.1, not {text!r}"
        ) from None
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise InvalidInput(f"--split needs three ratios summing to 1, got {text!r}")
    return values


@dataset_app.command("build")
def dataset_build(
    output: Annotated[Path, typer.Option(help="folder for the Parquet snapshot")],
    domain: Annotated[str, typer.Option(help="items or people")] = "items",
    negative_samples: Annotated[int, typer.Option(help="negatives per positive")] = 0,
    negative_strategy: Annotated[str, typer.Option(help="uniform or popularity")] = "uniform",
    min_interactions: Annotated[int, typer.Option(help="drop users with fewer")] = 1,
    split_kind: Annotated[
        str, typer.Option("--split-kind", help="temporal, global_temporal, random, leave_last_out")
    ] = "temporal",
    split: Annotated[str, typer.Option("--split", help="ratios train,valid,test")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
) -> None:
    """Extract interactions from the store into a versioned, labelled, split snapshot."""
    from matchwise.data.dataset import save_dataset
    from matchwise.train.dataset import build_dataset

    if domain not in ("items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    if split_kind not in ("temporal", "global_temporal", "random", "leave_last_out"):
        raise InvalidInput(f"unknown --split-kind {split_kind!r}")
    if negative_samples < 0:
        raise InvalidInput("--negative-samples must be >= 0")
    runtime = _runtime()
    with runtime.session() as session:
        dataset = build_dataset(
            session,
            runtime.settings.action_table,
            runtime.settings.hash_secret,
            domain=domain,  # type: ignore[arg-type]
            negative_samples=negative_samples,
            negative_strategy=negative_strategy,  # type: ignore[arg-type]
            min_interactions=min_interactions,
            split=split_kind,  # type: ignore[arg-type]
            ratios=_ratios(split),
            seed=seed,
        )
    save_dataset(dataset, output)
    print_dataset_stats(dataset.manifest)
    console.print(f"snapshot {dataset.manifest['version']} written to {output}")


def print_dataset_stats(manifest: dict[str, Any]) -> None:
    stats = manifest["stats"]
    table = Table(title=f"Dataset Statistics ({manifest['domain']}, {manifest['split']} split)")
    table.add_column("")
    table.add_column("value", justify="right")
    for part, n in stats["rows"].items():
        table.add_row(f"{part} rows", f"{n:,}")
    table.add_row("users (with data / all)", f"{stats['users_with_data']:,} / {stats['users']:,}")
    table.add_row("items (with data / all)", f"{stats['items_with_data']:,} / {stats['items']:,}")
    table.add_row("item coverage", f"{stats['item_coverage']:.1%}")
    table.add_row("density", f"{stats['density']:.4%}")
    table.add_row("positives", f"{stats['positives']:,}")
    console.print(table)
    labels = Table(title="label distribution")
    labels.add_column("label")
    labels.add_column("rows", justify="right")
    for label, n in sorted(stats["labels"].items(), key=lambda kv: -float(kv[0])):
        labels.add_row(label, f"{n:,}")
    console.print(labels)


@bench_app.command("speed-dating")
def benchmark_speed_dating(
    path: Annotated[Path, typer.Argument(help="Speed Dating Experiment CSV")],
    seed: Annotated[int, typer.Option(help="seed of the 20% held-out pairs")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Decision AUC, match AUC and NDCG@5 for random, popularity, one-sided, reciprocal."""
    from matchwise.data.speed_dating import run_speed_dating_benchmark

    result = run_speed_dating_benchmark(path, seed=seed)
    if as_json:
        sys.stdout.write(json.dumps(result, default=float) + "\n")
        return
    table = Table(title=f"speed dating: {result['dataset']} (20% of pairs held out)")
    for col in ("scorer", "decision AUC", "match AUC", "NDCG@5"):
        table.add_column(col, justify="right" if col != "scorer" else "left")
    for name, row in result["results"].items():
        table.add_row(name, f"{row['decision_auc']:.3f}", f"{row['match_auc']:.3f}",
                      f"{row['ndcg@5']:.3f}")  # fmt: skip
    console.print(table)


@bench_app.command("people")
def benchmark_people(
    users: Annotated[int, typer.Option(help="synthetic people")] = 1000,
    swipes: Annotated[int, typer.Option(help="synthetic swipes")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
    base: Annotated[str, typer.Option(help="one-sided model: two_tower or ease")] = "two_tower",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Reciprocal vs one-sided vs popularity on synthetic dating data (mutual matches)."""
    from matchwise.bench.people import run_people_benchmark

    result = run_people_benchmark(n_users=users, n_swipes=swipes, seed=seed, base=base)
    sys.stdout.write(json.dumps(result, default=float, indent=None if as_json else 2) + "\n")


@bench_app.command("movielens")
def benchmark_movielens(
    path: Annotated[Path, typer.Argument(help="MovieLens folder: 100K, 1M or latest")],
    protocol: Annotated[str, typer.Option(help="recbole or temporal")] = "recbole",
    k: Annotated[int, typer.Option(help="cut-off")] = 10,
    models: Annotated[
        str | None, typer.Option(help="comma-separated model names (default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """matchwise's models and peer libraries on one split, full ranking."""
    from matchwise.bench.movielens import render_table, run_movielens_benchmark

    if protocol not in ("recbole", "temporal"):
        raise InvalidInput(f"--protocol must be recbole or temporal, not {protocol!r}")
    if k < 1:
        raise InvalidInput("--k must be >= 1")
    names = [m.strip() for m in models.split(",")] if models else None
    result = run_movielens_benchmark(path, protocol=protocol, k=k, models=names,
                                     progress=not as_json)  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    console.print(render_table(result))


models_app = typer.Typer(
    help="The model registry: list, activate, roll back.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@app.command()
def train(
    model: Annotated[
        str, typer.Argument(help="two_tower, hybrid, ease, logistic, popularity, ...")
    ],
    config: Annotated[Path | None, typer.Option(help="JSON file of hyperparameters")] = None,
    epochs: Annotated[int | None, typer.Option(help="training epochs")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate")] = None,
    l2: Annotated[float | None, typer.Option(help="L2 regularisation / weight decay")] = None,
    domain: Annotated[str | None, typer.Option(help="items or people")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="train and evaluate; write nothing to the store")
    ] = False,
    activate: Annotated[str, typer.Option(help="if_better, always or never")] = "if_better",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    sms: Annotated[Path | None, typer.Option(help="safety only: SMS Spam Collection file")] = None,
    instagram: Annotated[
        Path | None, typer.Option(help="safety only: folder with the fake-account CSVs")
    ] = None,
) -> None:
    """Train a model on the store's data, evaluate it against baselines, register it.

    ``train safety`` trains the multi-label safety classifier instead (public sets,
    the synthetic corpus and moderator labels from the store).
    """
    from matchwise.train.pipeline import train_model

    if domain not in (None, "items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    runtime = _runtime()
    if model == "safety":
        _train_safety(runtime, sms, instagram, as_json)
        return
    result = train_model(
        runtime,
        model,
        config_path=config,
        flags={"epochs": epochs, "lr": lr, "l2": l2},
        dry_run=dry_run,
        domain=domain,
        activate=activate,
        progress=not as_json,
    )
    if as_json:
        out = {
            "model": result.model_type,
            "version": result.version,
            "validation": result.validation,
            "test": result.test,
            "train_seconds": result.train_seconds,
            "registry_id": result.registry_id,
            "activated": result.activated,
            "reason": result.reason,
            "report": str(result.report_html),
        }
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        return
    print_metrics(f"{result.model_type} {result.version}", result.test)
    console.print(result.reason)
    console.print(f"report: [cyan]{result.report_html}[/cyan]")


def _train_safety(
    runtime: Runtime, sms: Path | None, instagram: Path | None, as_json: bool
) -> None:
    from matchwise.ops.safety import train_and_register

    with console.status("training the safety classifier (embedding texts takes a while)..."):
        out = train_and_register(runtime, sms, instagram)
    if as_json:
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        return
    table = Table(title=f"safety {out['version']}: held-out test splits")
    for col in ("head", "precision", "recall", "F1", "AUC"):
        table.add_column(col, justify="right" if col != "head" else "left")
    for label, values in out["metrics"].get("test", {}).items():
        if isinstance(values, dict) and "f1" in values:
            table.add_row(label, *(f"{values.get(k, float('nan')):.3f}"
                                   for k in ("precision", "recall", "f1", "auc")))  # fmt: skip
    console.print(table)
    console.print(f"moderator labels used: {out['moderator_labels']}")


def print_metrics(title: str, results: dict[str, dict[str, float]]) -> None:
    metrics = ["ndcg@10", "recall@10", "precision@10", "hit@10", "map@10", "f1@10"]
    table = Table(title=f"{title}: test split, full ranking")
    table.add_column("model")
    for m in metrics:
        table.add_column(m, justify="right")
    for name, values in results.items():
        table.add_row(name, *(f"{values.get(m, float('nan')):.4f}" for m in metrics))
    console.print(table)


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="model type whose active version to evaluate")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Evaluate the active version of a model on a fresh dataset from the store."""
    from matchwise.train.pipeline import evaluate_active

    result = evaluate_active(_runtime(), model)
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    print_metrics(f"{model} {result['version']}", result["test"])


@models_app.command("list")
def models_list(
    model_type: Annotated[str | None, typer.Option("--type", help="only this type")] = None,
) -> None:
    """Registered versions: name, type, version, size in MB, metrics, active."""
    from matchwise.registry import list_versions

    runtime = _runtime()
    with runtime.session() as session:
        rows = list_versions(session, model_type)
    table = Table(title="models")
    for col in ("id", "type", "version", "MB", "val ndcg@10", "test ndcg@10", "created", "active"):
        table.add_column(col)
    for r in rows:
        val = r.metrics.get("validation", {}).get("ndcg@10")
        test = r.metrics.get("test", {}).get("ndcg@10")
        table.add_row(
            r.id[:8], r.model_type, r.version, f"{r.size_bytes / 1e6:.2f}",
            "" if val is None else f"{val:.4f}", "" if test is None else f"{test:.4f}",
            r.created_at.strftime("%Y-%m-%d %H:%M"), "[green]yes[/green]" if r.is_active else "",
        )  # fmt: skip
    console.print(table)


def _resolve_model_id(session: Any, ident: str) -> str:
    from sqlalchemy import select

    from matchwise.db.tables import ModelVersion

    rows = session.scalars(select(ModelVersion.id).where(ModelVersion.id.startswith(ident))).all()
    if len(rows) == 1:
        return str(rows[0])
    if len(rows) > 1:
        raise InvalidInput(f"{ident!r} matches several model ids; give more characters")
    return ident


@models_app.command("activate")
def models_activate(
    ident: Annotated[str, typer.Argument(help="registry id (prefix) or version")],
) -> None:
    """Make a version the active one of its type (audit-logged)."""
    from matchwise.registry import ArtifactStore, activate_version

    runtime = _runtime()
    store = ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as session:
        row = activate_version(session, store, _resolve_model_id(session, ident), actor="cli")
        console.print(f"[green]active[/green] {row.model_type} {row.version}")


@models_app.command("rollback")
def models_rollback(model_type: Annotated[str, typer.Argument(help="model type")]) -> None:
    """Re-activate the version that was active before the current one."""
    from matchwise.registry import ArtifactStore, rollback

    runtime = _runtime()
    store = ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as session:
        row = rollback(session, store, model_type, actor="cli")
        console.print(f"[green]rolled back[/green] {row.model_type} to {row.version}")


safety_app = typer.Typer(
    help="Trust and safety: classify texts, scan profiles.", no_args_is_help=True
)
app.add_typer(safety_app, name="safety")


@safety_app.command("check")
def safety_check(
    text: Annotated[str | None, typer.Argument(help="the text to classify")] = None,
    profile_id: Annotated[str | None, typer.Option("--profile-id", help="a stored profile")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Per-label probabilities and decisions for a text and/or a profile."""
    from matchwise.ops.safety import classify

    if text is not None and len(text) > 10_000:
        raise InvalidInput("text is over 10,000 characters")
    result = classify(_runtime(), text, profile_id)
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
    from matchwise.ops.safety import scan_profiles

    stats = scan_profiles(_runtime(), user_id or None)
    console.print(f"scanned {stats['scanned']:,} profiles, held {stats['flagged']:,} for review")


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
) -> None:
    """The main job on the embedded default: data, store, recommendations, summary."""
    from matchwise.cli.demo import run_demo

    run_demo(console, size=size, seed=seed)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input → a clear message and a non-zero exit, no traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redact_logs()
    try:
        app(args=argv)
    except (InvalidInput, NotFound) as exc:
        err_console.print(f"[red]error:[/red] {redact(str(exc))}", markup=True)
        raise SystemExit(2) from None
    except MatchwiseError as exc:
        err_console.print(f"[red]error:[/red] {redact(str(exc))}")
        raise SystemExit(1) from None
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            err_console.print(f"[red]error:[/red] {problems}")
            raise SystemExit(2) from None
        raise
