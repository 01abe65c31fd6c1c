"""The ``matchwise`` command: thin Typer shells over the same functions the API calls,
one module per command group, composed here."""

from __future__ import annotations

import logging

import typer
from pydantic import ValidationError
from rich.markup import escape

from matchwise.cli import (
    access,
    bench,
    data,
    demo,
    experiments,
    jobs,
    matches,
    models,
    monitor,
    safety,
    serving,
    similar,
    store,
)
from matchwise.cli.exits import exit_code
from matchwise.cli.render import err_console
from matchwise.redaction import redact, redact_logs

app = typer.Typer(
    name="matchwise",
    help="Recommendations and matching for matching apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(store.db_app, name="db")
app.add_typer(data.dataset_app, name="dataset")
app.add_typer(data.load_app, name="load")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(access.export_app, name="export")
app.add_typer(access.keys_app, name="keys")
app.add_typer(access.users_app, name="users")
app.add_typer(models.models_app, name="models")
app.add_typer(bench.bench_app, name="benchmark")
app.add_typer(safety.safety_app, name="safety")
app.add_typer(experiments.experiments_app, name="experiments")
app.command()(data.generate)
app.command("recommend")(serving.recommend_cmd)
app.command()(matches.matches)
app.command()(similar.similar)
app.command()(monitor.monitor)
app.command()(serving.interact)
app.command()(serving.serve)
app.command()(serving.refresh)
app.command("mirror-cache")(serving.mirror_cache)
app.command()(jobs.worker)
app.command()(access.retention)
app.command()(models.train)
app.command()(models.evaluate)
app.command()(demo.demo)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: an error gets one line on stderr and the exit code of its kind
    (:mod:`matchwise.cli.exits`), no traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redact_logs()
    try:
        app(args=argv)
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        err_console.print(f"[red]error:[/red] {escape(redact(_message(exc)))}")
        raise SystemExit(code) from None


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)
