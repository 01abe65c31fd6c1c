"""Data in: generated sets, MovieLens, Speed Dating, your own exports; training datasets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from matchwise.cli.render import (
    console,
    open_runtime,
    print_dataset_stats,
)
from matchwise.data.bundle import DataBundle
from matchwise.data.dataset import save_dataset
from matchwise.data.importers import (
    FILE_FORMATS,
    INTERACTION_FIELDS,
    ITEM_FIELDS,
    PROFILE_FIELDS,
    TIME_CANDIDATES,
    FileFormat,
    column_map,
    file_format,
    read_events,
    read_interactions,
    read_items,
    read_profiles,
    row_numbering,
)
from matchwise.data.movielens import read_movielens
from matchwise.data.speed_dating import read_speed_dating
from matchwise.data.synthetic import generate as make
from matchwise.data.synthetic import window_start
from matchwise.db.queries import existing_ids
from matchwise.db.tables import Item, User
from matchwise.errors import InvalidInput
from matchwise.ingest.bulk import RowSource, write_bundle
from matchwise.ingest.events import import_events
from matchwise.runtime import Runtime
from matchwise.train.dataset import build_dataset

dataset_app = typer.Typer(help="Training datasets: extract, label, split.", no_args_is_help=True)
load_app = typer.Typer(
    help="Import data: MovieLens, your own CSV/Parquet exports.", no_args_is_help=True
)


def generate(
    domain: Annotated[str, typer.Option(help="items or people")] = "items",
    size: Annotated[str, typer.Option(help="small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed: same seed, same data")] = 42,
    anchor: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="the day the data leads up to (default today)"),
    ] = None,
) -> None:
    """Generate a realistic synthetic data set and write it to the store.

    Its 60 days of activity end on --anchor (default today), so part of its events are
    still to come, as a real app's are; the same seed gives the same event ids on any
    day, so generating again adds no event twice.
    """

    if domain not in ("items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    if size not in ("small", "medium", "large"):
        raise InvalidInput(f"--size must be small, medium or large, not {size!r}")
    bundle = make(domain, size=size, seed=seed, start=window_start(anchor))
    _write_bundle(bundle)


def _write_bundle(
    bundle: Any, runtime: Runtime | None = None, source: Any = None
) -> dict[str, int]:
    """Write a bundle (all or nothing) and say what happened to every row of it: created,
    updated, skipped as duplicates, and the matches it made."""

    runtime = runtime or open_runtime()
    with console.status(f"writing {len(bundle.interactions):,} interactions..."):
        stats = write_bundle(
            runtime,
            bundle,
            runtime.settings.action_table,
            elo=runtime.settings.elo,
            source=source,
        )
    table = Table(title=f"loaded {bundle.name}")
    for col in ("", "in file", "created", "updated"):
        table.add_column(col, justify="right" if col else "left")
    for kind, frame in (("users", bundle.users), ("items", bundle.items)):
        table.add_row(kind, f"{len(frame):,}", f"{stats[kind]:,}",
                      f"{stats.get(f'{kind}_updated', 0):,}")  # fmt: skip
    table.add_row("interactions", f"{len(bundle.interactions):,}",
                  f"{stats['interactions']:,}", "-")  # fmt: skip
    console.print(table)
    if len(bundle.interactions):
        console.print(
            f"interactions: {stats['duplicates']:,} skipped as duplicates "
            "(event id already stored or repeated)"
        )
        console.print(f"matches created: {stats.get('matches', 0):,}")
        if stats.get("matches_refused"):
            console.print(
                f"match rows not stored: {stats['matches_refused']:,} (one of the two people "
                "blocked the other)"
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

    _write_bundle(read_movielens(path))


@load_app.command("speed-dating")
def load_speed_dating(
    path: Annotated[Path, typer.Argument(help="Speed Dating Experiment CSV (Fisman & Iyengar)")],
) -> None:
    """Load the Speed Dating Experiment: people, likes/passes, matches."""

    _write_bundle(read_speed_dating(path))


# --- options every `load FILE` command shares --------------------------------------------

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"{' | '.join(FILE_FORMATS)}; default: from the file name (.csv, .tsv, .jsonl, "
        ".parquet; .dat, .txt and .data are delimited text whose separator is read off "
        "the first line)",
    ),
]
SepOption = Annotated[
    str | None,
    typer.Option(
        "--sep", help="column separator of delimited text: tab, '::', ';', '|', ... (a "
        "typed \\t is a tab)",
    ),
]  # fmt: skip
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="comma-separated names of the columns of a file without a header row "
        "(MovieLens u.data: user_id,item_id,rating,timestamp)",
    ),
]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="COLUMN=FIELD: read the file's COLUMN as the recognised FIELD (repeatable), "
        "e.g. --map interests=tags",
    ),
]


def _format(fmt: str | None, sep: str | None, columns: str | None) -> FileFormat:
    return file_format(fmt, sep, columns)


INTERACTIONS_HELP = "\n\n".join(
    (
        "Import your own interaction export; users and items it names are created if new.",
        f"Recognised columns: {', '.join(INTERACTION_FIELDS)} (occurred_at may also be called "
        f"{', '.join(TIME_CANDIDATES[1:])}; a rating or value column without an action makes "
        "'rate' events). Name yours with the --*-col options or --map COLUMN=FIELD.",
        "Event ids come from --event-id-col only: without it each row gets a stable id from "
        "its content and position, so loading the same file again adds nothing.",
        "Implicit feedback (user, item, play count): --action play --value-col plays records a "
        "'play' for every row with the count as its value (add 'play' to the actions table in "
        "matchwise.yaml first, or use an action matchwise knows).",
        "The file is checked whole before anything is written, then written in one "
        "transaction; rows without a time get the load time.",
    )
)


@load_app.command("interactions", help=INTERACTIONS_HELP)
def load_interactions(
    path: Annotated[Path, typer.Argument(help="CSV, TSV, .dat/.txt, JSON lines or Parquet")],
    user_col: Annotated[str, typer.Option(help="column with the acting user's id")] = "user_id",
    item_col: Annotated[str | None, typer.Option(help="column with the item id")] = "item_id",
    target_user_col: Annotated[
        str | None, typer.Option(help="column with the target user's id (people domain)")
    ] = None,
    action_col: Annotated[str | None, typer.Option(help="column with the action")] = None,
    value_col: Annotated[str | None, typer.Option(help="column with a rating/value")] = None,
    time_col: Annotated[str | None, typer.Option(help="column with the time")] = None,
    event_id_col: Annotated[
        str | None,
        typer.Option(
            help="column with a unique event id to de-duplicate by (none: ids "
            "from each row's content)"
        ),
    ] = None,  # fmt: skip
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            "--default-action",
            help="action for every row when there is no action column (with "
            "--value-col, the value is kept with it: a play count, a rating)",
        ),
    ] = None,  # fmt: skip
    fmt: FormatOption = None,
    sep: SepOption = None,
    columns: ColumnsOption = None,
    mapping: MapOption = None,
) -> None:
    read_as = _format(fmt, sep, columns)
    mapped = column_map(mapping or [], INTERACTION_FIELDS, "interaction")
    if target_user_col or "target_user_id" in mapped.values():
        item_col = None
    runtime = open_runtime()
    actions = runtime.settings.action_table
    if action is not None and action.strip().lower() not in actions:
        known = ", ".join(sorted(actions))
        raise InvalidInput(
            f"--action: unknown action {action!r}; known: {known} (more can be added under "
            "'actions:' in matchwise.yaml)"
        )
    frame = read_interactions(
        path,
        user_col=user_col,
        item_col=item_col,
        target_user_col=target_user_col,
        action_col=action_col,
        value_col=value_col,
        time_col=time_col,
        default_action=action,
        event_id_col=event_id_col,
        file_format=read_as,
        columns=mapped,
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
    named = {
        "user_id": user_col,
        "item_id": item_col,
        "target_user_id": target_user_col,
        "action": action_col,
        "value": value_col,
        "occurred_at": time_col,
        "event_id": event_id_col,
    } | {field: column for column, field in mapped.items()}
    source = RowSource(
        str(path),
        *row_numbering(path, read_as),
        {k: v for k, v in named.items() if v is not None},
    )
    _write_bundle(_only_new_entities(runtime, bundle), runtime, source)


@load_app.command("events")
def load_events(
    path: Annotated[
        Path, typer.Argument(help='JSON lines (one event a line) or JSON ({"events": [...]})')
    ],
) -> None:
    """Import events exactly as POST /v1/events takes them: interactions, impressions,
    swipe batches and matches (user_a_id/user_b_id/match_type or user_id/matched_user_id).

    The users and items they name must exist (load profiles and items first). The file
    is checked whole, then written in one transaction; retried events (same event_id, or
    same content and timestamp) are skipped as duplicates.
    """
    events, where = read_events(path)
    runtime = open_runtime()
    with console.status(f"writing {len(events):,} events..."):
        result = runtime.transaction(import_events, runtime.settings, events, where.__getitem__)
    console.print(
        f"loaded {path.name}: {len(events):,} events, {result.written:,} interactions "
        f"written, {result.duplicates:,} skipped as duplicates, {result.sampled_out:,} "
        f"sampled out; matches created: {len(result.matches_created):,}"
        + (f", refused (blocked): {result.matches_refused:,}" if result.matches_refused else "")
    )


def _only_new_entities(runtime: Runtime, bundle: Any) -> Any:
    """Keep profiles/items the store already has untouched when importing bare ids."""

    with runtime.session() as session:
        users = existing_ids(session, User.id, list(bundle.users["id"]))
        items = existing_ids(session, Item.id, list(bundle.items["id"]))
    bundle.users = bundle.users[~bundle.users["id"].isin(users)]
    bundle.items = bundle.items[~bundle.items["id"].isin(items)]
    return bundle


def _entities_help(what: str, api: str, fields: tuple[str, ...]) -> str:
    return "\n\n".join(
        (
            f"Import {what}; each row must pass what {api} accepts.",
            f"Recognised columns: {', '.join(fields)}. Any other column is kept as an "
            "attribute; map yours onto a recognised one with --map COLUMN=FIELD (e.g. "
            "--map interests=tags), repeatable. List columns (tags, seeking) take JSON "
            "lists, 'a|b|c' or 'a,b'.",
            "The first row that does not pass refuses the whole file with its line and "
            f"column, and nothing is written. Rows whose id is already stored update that "
            f"{what[:-1]}.",
        )
    )


@load_app.command("profiles", help=_entities_help("profiles", "POST /v1/users", PROFILE_FIELDS))
def load_profiles(
    path: Annotated[Path, typer.Argument(help="CSV, TSV, JSON lines or Parquet file")],
    id_col: Annotated[str, typer.Option(help="column with the user id")] = "id",
    fmt: FormatOption = None,
    sep: SepOption = None,
    columns: ColumnsOption = None,
    mapping: MapOption = None,
) -> None:
    mapped = column_map(mapping or [], PROFILE_FIELDS, "profile")
    users = read_profiles(path, id_col, mapped, _format(fmt, sep, columns))
    _write_bundle(DataBundle(users, pd.DataFrame(columns=["id"]), _no_interactions(), path.name))


@load_app.command("items", help=_entities_help("items", "POST /v1/items", ITEM_FIELDS))
def load_items(
    path: Annotated[Path, typer.Argument(help="CSV, TSV, JSON lines or Parquet file")],
    id_col: Annotated[str, typer.Option(help="column with the item id")] = "id",
    fmt: FormatOption = None,
    sep: SepOption = None,
    columns: ColumnsOption = None,
    mapping: MapOption = None,
) -> None:
    mapped = column_map(mapping or [], ITEM_FIELDS, "item")
    items = read_items(path, id_col, mapped, file_format=_format(fmt, sep, columns))
    _write_bundle(DataBundle(pd.DataFrame(columns=["id"]), items, _no_interactions(), path.name))


def _no_interactions() -> Any:
    return pd.DataFrame(columns=["event_id", "user_id", "item_id", "action", "occurred_at"])


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

    if domain not in ("items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    if split_kind not in ("temporal", "global_temporal", "random", "leave_last_out"):
        raise InvalidInput(f"unknown --split-kind {split_kind!r}")
    if negative_samples < 0:
        raise InvalidInput("--negative-samples must be >= 0")
    runtime = open_runtime()
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
