"""Serving: recommendations, interactions, the API, the ranking cache."""

from __future__ import annotations

import errno
import json
import socket
import sys
from typing import Annotated

import typer

from matchwise.api.server import uvicorn_options
from matchwise.cli.exits import AddressUnavailable
from matchwise.cli.render import (
    console,
    open_runtime,
    print_recommendations,
)
from matchwise.errors import InvalidInput
from matchwise.ingest.events import record_interaction, resolve_target
from matchwise.redaction import redact_logs
from matchwise.runtime import keep_freed_memory
from matchwise.scale import refresh_with_ray
from matchwise.schemas import InteractionIn
from matchwise.serve.online import mirror_database_cache
from matchwise.serve.people_refresh import refresh_people
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.types import RecommendFilters, resolve_request
from matchwise.train.retrain import retrain


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

    if kind not in (None, "item", "user"):
        raise InvalidInput(f"--kind must be 'item' or 'user', not {kind!r}")
    if not 1 <= top_n <= 1000:
        raise InvalidInput("--top-n must be between 1 and 1000")
    runtime = open_runtime()
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
        arm = {} if result.experiment is None else {"experiment": result.experiment,
                                                     "arm": result.arm}  # fmt: skip
        rows = [
            {**r.wire(), "route": result.route, "model_version": result.model_version, **arm}
            for r in result.recommendations
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    print_recommendations(result)


def interact(
    user_id: Annotated[str, typer.Option("--user-id", "--user_id", help="who acts")],
    target: Annotated[str, typer.Option(help="the user or item acted on")],
    action: Annotated[str, typer.Option(help="like, superlike, reject, click, register, ...")],
    value: Annotated[float | None, typer.Option(help="a rating or value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Record a swipe or another interaction, exactly as ``POST /v1/interactions`` does:
    the swipe takes effect in both people's lists at once, a mutual like creates a match,
    and a meaningful one queues a refresh of the user's cached list (a worker runs it)."""
    runtime = open_runtime()
    with runtime.read_session() as session:
        prefer = "user" if runtime.settings.domain == "people" else "item"
        kind = resolve_target(session, target, prefer=prefer)
        interaction = InteractionIn(
            user_id=user_id,
            action=action,
            value=value,
            item_id=target if kind == "item" else None,
            target_user_id=target if kind == "user" else None,
        )
    out = runtime.transaction(record_interaction, interaction, runtime.settings)
    if as_json:
        sys.stdout.write(out.model_dump_json() + "\n")
        return
    console.print(f"[green]recorded[/green] {user_id} {action} {target}")
    if out.match_created:
        console.print(f"[bold magenta]it's a match:[/bold magenta] {user_id} and {target}")


def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="log a line per request (uvicorn's access log; about 5 % of a cached "
            "request's time); errors and warnings are logged either way",
        ),
    ] = True,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Exits 3 at once, before anything loads,
    when it cannot listen on --host and --port (the port is in use, for one)."""
    import uvicorn

    check_address(host, port)
    runtime = open_runtime()  # migrates once, and fails here clearly if the store is down
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
        access_log=access_log,
        **options,
    )


def check_address(host: str, port: int) -> None:
    """Bind ``host:port`` the way uvicorn will, and let go: a port in use or an address
    that is not this machine's is refused here in one line, not after the models load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # uvicorn's choice
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "is in use: another program listens there; stop it or use --port"
            raise AddressUnavailable(f"port {port} on {host} {why}") from None
        if exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges); use --port"
        else:
            why = f"{exc.strerror or exc}; use --host with an address of this machine"
        raise AddressUnavailable(f"cannot listen on {host}:{port}: {why}") from None


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
    """Recompute the ranking cache for every active user, or one."""
    from rich.progress import Progress

    if kind not in (None, "item", "user"):
        raise InvalidInput(f"--kind must be 'item' or 'user', not {kind!r}")
    runtime = open_runtime()
    if ray_address:  # for the training tasks as well as the refresh
        runtime.settings = runtime.settings.model_copy(update={"ray_address": ray_address})
    if not skip_training:
        outcome, _ = retrain(runtime, ray=ray or bool(ray_address))
        for name, summary in outcome.items():
            state = "activated" if summary["activated"] else "kept the active version"
            console.print(f"{name}: {summary['version']} {state} ({summary['reason']})")
    users = [user_id] if user_id else None
    top_n, list_kind = resolve_request(runtime.settings, top_n, kind)  # type: ignore[arg-type]
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("refreshing", total=None)
        if ray or ray_address:  # people lists: the batched people refresh on each actor
            stats = refresh_with_ray(runtime, users, top_n=top_n, kind=list_kind,
                                     progress=lambda n: bar.advance(task, n))  # fmt: skip
        elif list_kind == "user":  # the batched people refresh, the live path's lists
            stats = refresh_people(runtime, users, top_n=top_n,
                                   progress=lambda n: bar.advance(task, n))  # fmt: skip
        else:
            keep_freed_memory(runtime.settings.refresh_keep_freed_mib)  # block after block
            stats = refresh_users(runtime, users, top_n=top_n, kind=list_kind,
                                  progress=lambda: bar.advance(task))  # fmt: skip
    console.print(
        f"[green]refreshed[/green] {stats['users']:,} users, {stats['rows']:,} cached rows"
    )


def mirror_cache() -> None:
    """Copy the database's ranking cache into Redis (``redis_url``) without recomputing:
    for an online cache that was just added, restarted or flushed."""

    written = mirror_database_cache(open_runtime())
    console.print(f"[green]mirrored[/green] {written:,} cached lists into Redis")
