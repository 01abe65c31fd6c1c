"""``matchwise experiments``: create, list, show, stop and promote online experiments,
the same service functions the API's ``/v1/admin/experiments`` routes call."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from matchwise.cli.render import console, open_runtime
from matchwise.errors import InvalidInput
from matchwise.ops import experiments
from matchwise.registry import ArtifactStore
from matchwise.schemas import ArmIn, ExperimentIn, ExperimentReportOut

experiments_app = typer.Typer(
    help="Online experiments: A/B tests and interleaving of models, with their statistics.",
    no_args_is_help=True,
)

ARM_HELP = (
    "an arm: NAME, or NAME:KEY=VALUE,... with keys weight, model_version, model_type and "
    "blend.SIGNAL (people); repeat for each arm, the control first. "
    "E.g. --arm control --arm new:model_version=two_tower-20261203"
)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def parse_arm(text: str) -> ArmIn:
    """``NAME`` or ``NAME:key=value,...`` as an arm (see ``--arm``'s help)."""
    name, _, rest = text.partition(":")
    fields: dict[str, Any] = {"name": name.strip()}
    blend: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise InvalidInput(f"--arm {text!r}: {part!r} is not KEY=VALUE")
        try:
            if key.startswith("blend."):
                blend[key.removeprefix("blend.")] = float(value)
            elif key == "weight":
                fields["weight"] = float(value)
            elif key in ("model_version", "model_type"):
                fields[key] = value
            else:
                raise InvalidInput(f"--arm {text!r}: unknown key {key!r} (weight, "
                                   "model_version, model_type, blend.SIGNAL)")  # fmt: skip
        except ValueError as exc:
            raise InvalidInput(f"--arm {text!r}: {key} must be a number, got {value!r}") from exc
    if blend:
        fields["blend"] = blend
    return ArmIn.model_validate(fields)


def _emit(payload: Any) -> None:
    sys.stdout.write(payload.model_dump_json() + "\n")


@experiments_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="a unique name (letters, digits, _.:-)")],
    arm: Annotated[list[str], typer.Option("--arm", help=ARM_HELP)],
    kind: Annotated[str, typer.Option(help="ab, or interleave (two arms in one list)")] = "ab",
    domain: Annotated[
        str | None, typer.Option(help="items or people; default the configured domain")
    ] = None,
    coverage: Annotated[float, typer.Option(help="share of users in the experiment")] = 1.0,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            help="an action that counts as a conversion (repeat); default the positive actions",
        ),  # fmt: skip
    ] = None,
    mde: Annotated[float, typer.Option(help="smallest relative lift worth detecting")] = 0.1,
    salt: Annotated[str | None, typer.Option(help="assignment salt; default generated")] = None,
    stops_at: Annotated[
        datetime | None, typer.Option(help="when it ends (UTC); default when stopped")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an experiment; it runs from now on."""
    spec = ExperimentIn.model_validate({
        "name": name, "kind": kind, "arms": [parse_arm(a) for a in arm], "domain": domain,
        "coverage": coverage, "outcome_actions": outcome or None, "mde": mde, "salt": salt,
        "stops_at": stops_at,
    })  # fmt: skip
    runtime = open_runtime()
    with runtime.session() as session:
        created = experiments.create(session, runtime.settings, spec, "cli")
    if as_json:
        _emit(created)
        return
    arms = ", ".join(f"{a.name} ({a.weight:g})" for a in created.arms)
    console.print(f"[green]running[/green] {created.name}: {created.kind}, {arms}; "
                  f"coverage {created.coverage:.0%}")  # fmt: skip


@experiments_app.command("list")
def list_cmd(
    status: Annotated[
        str | None, typer.Option(help="only this status: running, ended, stopped or promoted")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Experiments, newest first."""
    runtime = open_runtime()
    with runtime.read_session() as session:
        found = experiments.list_experiments(session, status)
    if as_json:
        sys.stdout.write("[" + ",".join(e.model_dump_json() for e in found) + "]\n")
        return
    table = Table("name", "kind", "domain", "status", "arms", "coverage", "starts_at")
    for e in found:
        table.add_row(e.name, e.kind, e.domain, e.status, ", ".join(a.name for a in e.arms),
                      f"{e.coverage:.0%}", f"{e.starts_at:%Y-%m-%d %H:%M}")  # fmt: skip
    console.print(table)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def print_report(rep: ExperimentReportOut) -> None:
    e = rep.experiment
    span = f"{rep.window_start:%Y-%m-%d %H:%M} to {rep.window_end:%Y-%m-%d %H:%M}"
    console.print(f"[bold]{e.name}[/bold] ({e.kind}, {e.domain}, {e.status}) {span}")
    if rep.arms:
        table = Table("arm", "users", "impressions", "CTR", "conversion", "95% interval")
        for a in rep.arms:
            ctr, conv = a.metrics.get("ctr"), a.metrics.get(rep.primary_metric)
            interval = "-" if conv is None else f"{conv.ci_low:.4g} .. {conv.ci_high:.4g}"
            table.add_row(a.arm, str(a.users), str(a.impressions),
                          _fmt(ctr.value if ctr else None), _fmt(conv.value if conv else None),
                          interval)  # fmt: skip
        console.print(table)
    for c in rep.comparisons:
        if c.metric == rep.primary_metric:
            seq = f"{c.sequential_ci_low:+.4g} .. {c.sequential_ci_high:+.4g}"
            console.print(f"{c.arm} vs control on {c.metric}: {c.difference:+.4g} "
                          f"(p {c.p_value:.3g}; always-valid p {c.sequential_p_value:.3g}, "
                          f"interval {seq})")  # fmt: skip
    if rep.sample_ratio is not None:
        flag = "[red]FLAGGED[/red]" if rep.sample_ratio.flagged else "ok"
        console.print(f"sample ratio: {flag} (p {rep.sample_ratio.p_value:.3g}, "
                      f"users {rep.sample_ratio.observed})")  # fmt: skip
    if rep.interleaving is not None:
        i = rep.interleaving
        console.print(f"interleaving: wins {i.wins}, ties {i.ties}, p {i.p_value:.3g}, "
                      f"winner {i.winner or 'none yet'}")  # fmt: skip
    if rep.users_needed_per_arm is not None:
        console.print(f"users needed per arm for a {e.mde:.0%} lift: {rep.users_needed_per_arm:,}")


@experiments_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="the experiment's name")],
    as_json: JsonOpt = False,
) -> None:
    """An experiment with its per-arm statistics so far."""
    runtime = open_runtime()
    with runtime.read_session() as session:
        rep = experiments.report(session, name)
    if as_json:
        _emit(rep)
    else:
        print_report(rep)


@experiments_app.command("stop")
def stop_cmd(
    name: Annotated[str, typer.Argument(help="the experiment's name")],
    as_json: JsonOpt = False,
) -> None:
    """Stop a running experiment: its users get the default at once."""
    runtime = open_runtime()
    with runtime.session() as session:
        stopped = experiments.stop(session, name, "cli")
    if as_json:
        _emit(stopped)
    else:
        console.print(f"[green]stopped[/green] {stopped.name}")


@experiments_app.command("promote")
def promote_cmd(
    name: Annotated[str, typer.Argument(help="the experiment's name")],
    arm: Annotated[
        str | None, typer.Option(help="the arm to promote; default the significant winner")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an arm what serves (activates its model version) and end the experiment;
    refused while the sample-ratio check flags the split."""
    runtime = open_runtime()
    store = ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as session:
        promoted = experiments.promote(session, store, name, arm, "cli")
    if as_json:
        _emit(promoted)
    else:
        console.print(f"[green]promoted[/green] {promoted.arm} of {name}: {promoted.note}")
