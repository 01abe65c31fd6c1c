"""``matchwise monitor``: the monitoring snapshot ``GET /v1/admin/monitoring`` answers,
computed now from the store (or the latest the daily job kept)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from matchwise.cli.render import console, open_runtime
from matchwise.errors import InvalidInput, NotFound
from matchwise.ops.monitoring import latest_snapshot, monitoring_report


def monitor(
    window_days: Annotated[
        int | None,
        typer.Option(
            "--window-days",
            help="events of the last this many days count (default monitoring.window_days, 7)",
        ),
    ] = None,
    stored: Annotated[
        bool, typer.Option("--stored", help="the latest snapshot the monitoring job kept")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the snapshot as JSON")] = False,
) -> None:
    """Coverage, cache freshness, routes, online metrics per model version and drift, with
    the flags the thresholds in settings (monitoring.*) raise. Request shares per route
    are the API's own (GET /v1/admin/monitoring); here only logged impressions count."""
    if window_days is not None and not 1 <= window_days <= 3650:
        raise InvalidInput("--window-days must be between 1 and 3650")
    runtime = open_runtime()
    if stored:
        with runtime.read_session() as session:
            report = latest_snapshot(session)
        if report is None:
            raise NotFound("no monitoring snapshot is stored yet: the monitoring job has not "
                           "run (`matchwise jobs enqueue monitoring`, then a worker)")  # fmt: skip
    else:
        report = monitoring_report(runtime, window_days)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    _print(report)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _print(report: dict[str, Any]) -> None:
    console.print(f"monitoring at {report['generated_at'][:19]} (last {report['window_days']} "
                  "days of events)")  # fmt: skip
    for kind, row in report["coverage"].items():
        console.print(f"coverage of {row['catalogue']} {kind}s: cached lists "
                      f"{_pct(row['cache'])}, impressions {_pct(row['impressions'])}")  # fmt: skip
    fresh = report["freshness"]
    if fresh["lists"]:
        console.print(f"cache: {fresh['lists']} lists, age median {fresh['median_hours']:.1f} h, "
                      f"p95 {fresh['p95_hours']:.1f} h, oldest {fresh['oldest_hours']:.1f} h; "
                      f"{_pct(fresh['stale_share'])} older than "
                      f"{fresh['max_age_hours']:g} h")  # fmt: skip
    shares = report["routes"]["impressions"]["shares"]
    if shares:
        console.print("impressions per route: "
                      + ", ".join(f"{k} {_pct(v)}" for k, v in shares.items()))  # fmt: skip
    if report["online"]:
        table = Table(title="online metrics per model version")
        for col in ("model version", "impressions", "CTR", "conversion", "match rate"):
            table.add_column(col)
        for row in report["online"]:
            table.add_row(row["model_version"] or "(none)", f"{row['impressions']:g}",
                          _pct(row["ctr"]), _pct(row["conversion_rate"]),
                          _pct(row["match_rate"]))  # fmt: skip
        console.print(table)
    for version in report["drift"]:
        if not version["available"]:
            console.print(f"drift of {version['model_version']}: {version['note']}")
            continue
        table = Table(title=f"drift of {version['model_version']} (PSI, training vs. served)")
        for col in ("feature", "PSI", "training n", "served n"):
            table.add_column(col)
        for row in version["features"]:
            table.add_row(row["feature"], f"{row['psi']:.3f}", str(row["reference_n"]),
                          str(row["current_n"]))  # fmt: skip
        console.print(table)
    if not report["flags"]:
        console.print("no flags")
    for flag in report["flags"]:
        line = (f"[{flag['level']}] {flag['metric']} = {flag['value']:.3f} "
                f"(threshold {flag['threshold']:g}): {flag['message']}")  # fmt: skip
        console.print(line, markup=False)
