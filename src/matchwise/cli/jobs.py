"""The job queue and its worker."""

from __future__ import annotations

import json
import signal
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from matchwise.cli.render import (
    console,
    open_runtime,
)
from matchwise.db.tables import Job
from matchwise.errors import InvalidInput
from matchwise.jobs.queue import enqueue, list_jobs
from matchwise.jobs.worker import Worker, load_handlers
from matchwise.serve.broadcast import start_listener

jobs_app = typer.Typer(
    help="The job queue: enqueue and inspect background work.", no_args_is_help=True
)


def worker(
    lease_seconds: Annotated[float, typer.Option(help="lease length; renewed while running")] = 60,
    poll_seconds: Annotated[float, typer.Option(help="sleep when the queue is empty")] = 1.0,
    backoff_seconds: Annotated[float, typer.Option(help="first retry delay, then doubled")] = 30,
    max_jobs: Annotated[int | None, typer.Option(help="stop after this many jobs")] = None,
    until_idle: Annotated[bool, typer.Option(help="stop when the queue is empty")] = False,
) -> None:
    """Run queued jobs (retrain, refresh_user, retention, monitoring, ...) until stopped;
    queue monitoring every monitoring.interval_hours. On PostgreSQL it listens for
    activations and profile writes as a server does, so refresh jobs use the active
    version from the commit on."""
    runtime = open_runtime()
    w = Worker(runtime, lease_seconds=lease_seconds, poll_seconds=poll_seconds,
               backoff_seconds=backoff_seconds)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    listener = start_listener(runtime)
    console.print(f"worker {w.worker_id} started")
    try:
        done = w.run(max_jobs=max_jobs, until_idle=until_idle)
    except KeyboardInterrupt:
        done = 0
    finally:
        if listener is not None:
            listener.close()
    console.print(f"worker {w.worker_id} stopped after {done} jobs")


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: Annotated[str, typer.Argument(help="retrain, refresh_user, retention or monitoring")],
    user_id: Annotated[str | None, typer.Option("--user-id", help="for refresh_user")] = None,
    top_n: Annotated[int, typer.Option("--top-n")] = 50,
    ray: Annotated[
        bool, typer.Option("--ray", help="retrain: one Ray task per model (matchwise[scale])")
    ] = False,
) -> None:
    """Queue a job; a second retrain is not queued while one is queued or running."""

    handlers = load_handlers()
    if kind not in handlers:
        raise InvalidInput(f"unknown job type {kind!r}; known: {', '.join(sorted(handlers))}")
    if kind == "refresh_user" and not user_id:
        raise InvalidInput("refresh_user needs --user-id")
    payload: dict[str, Any] = {"top_n": top_n}
    if ray:
        payload["ray"] = True
    if user_id:
        payload["user_id"] = user_id
    key = f"{kind}:{user_id}" if user_id else kind
    runtime = open_runtime()
    with runtime.session() as session:
        job, created = enqueue(session, kind, payload, dedupe_key=key)
        job_id = job.id
    word = "queued" if created else "already queued or running"
    console.print(f"job {job_id} ({kind}) {word}")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, done or failed")] = None,
    limit: Annotated[int, typer.Option(help="how many")] = 30,
    as_json: Annotated[
        bool, typer.Option("--json", help="print a JSON list, one object per job")
    ] = False,
) -> None:
    """Recent jobs with their status, attempts and last error."""

    runtime = open_runtime()
    with runtime.session() as session:
        rows = [_job_fields(j) for j in list_jobs(session, status=status, limit=limit)]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="jobs")
    for col in ("id", "type", "status", "attempts", "created", "worker", "last error"):
        table.add_column(col)
    for j in rows:
        error = (j["last_error"] or "").splitlines()[0][:60] if j["last_error"] else ""
        created = j["created_at"][:19].replace("T", " ")
        attempts = f"{j['attempts']}/{j['max_attempts']}"
        table.add_row(str(j["id"]), j["job_type"], j["status"], attempts, created,
                      j["worker"] or "", error)  # fmt: skip
    console.print(table)


def _job_fields(job: Job) -> dict[str, Any]:
    """One job as ``jobs list`` shows it; the last error whole (the table shows its start)."""
    return {
        "id": job.id,
        "job_type": job.job_type,
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at.isoformat(),
        "worker": job.locked_by,
        "last_error": job.last_error,
    }
