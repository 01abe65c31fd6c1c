"""Bulk loads of generated or imported data: checked whole, written in one
transaction, only duplicate event ids skipped."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, bindparam, or_, select
from sqlalchemy.orm import Session

from matchwise.actions import ActionRule
from matchwise.data.bundle import DataBundle
from matchwise.db.matching import sync_matches
from matchwise.db.notify import lists_changed
from matchwise.db.queries import (
    CHUNK,
    INTERACTION_COLUMNS,
    chunked,
    existing_ids,
    insert_interactions,
)
from matchwise.db.tables import Interaction, Item, User, utcnow
from matchwise.errors import InvalidInput
from matchwise.ingest.profiles import age_from_birth_date, upsert_rows
from matchwise.jobs.queue import maybe_enqueue_safety_scan
from matchwise.models.elo import ratings_from_swipes
from matchwise.runtime import Runtime
from matchwise.schemas import (
    InteractionIn,
    ItemIn,
    UserIn,
)

log = logging.getLogger(__name__)

USERS = cast(Table, User.__table__)


@dataclass(frozen=True)
class RowSource:
    """Where a bundle's interaction rows came from, so an error names a row a person can find.

    ``RowSource("clicks.csv", "line", 2, {"user_id": "member"})`` names position 3 as
    ``clicks.csv: line 5`` and the ``user_id`` field as the file's column ``'member'``.
    """

    name: str
    unit: str = "row"
    first: int = 1
    columns: dict[str, str] | None = None

    def at(self, position: int) -> str:
        return f"{self.name}: {self.unit} {position + self.first}"

    def column(self, field: str) -> str:
        return (self.columns or {}).get(field, field)


#: Interaction fields checked value by value with the API's own model.
_MODEL_CHECKED = (
    "user_id",
    "item_id",
    "target_user_id",
    "action",
    "value",
    "position",
    "duration_ms",
    "session_id",
    "context_hash",
    "model_version",
    "route",
)
_PROBE = {"user_id": "probe", "action": "view"}  # a valid interaction to vary one field of


def _problem(exc: ValueError) -> str:
    """pydantic's first complaint as one line (its ValidationError is a ValueError)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    return str(errors()[0]["msg"]).removeprefix("Value error, ")


def _plain_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _first(mask: Any) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _check_ids(frame: pd.DataFrame, model: type[Any], what: str, name: str) -> None:
    """Profile or item ids: present, unique, and valid by the API's id rule."""
    if frame.empty:
        return
    if "id" not in frame.columns:
        raise InvalidInput(f"{name}: the {what} have no 'id' column")
    ids = frame["id"].reset_index(drop=True)
    if ids.isna().any():
        raise InvalidInput(f"{name}: {what} row {_first(ids.isna()) + 1}: empty id")
    repeated = ids.duplicated().to_numpy()
    if repeated.any():
        row = _first(repeated)
        raise InvalidInput(f"{name}: {what} row {row + 1}: id {ids[row]!r} appears twice")
    for ident in pd.unique(ids):
        try:
            model.model_validate({"id": _plain_value(ident)})
        except ValueError as exc:
            row = _first((ids == ident).to_numpy())
            raise InvalidInput(
                f"{name}: {what} row {row + 1}, column 'id': {_problem(exc)} (got {ident!r})"
            ) from exc


def _check_interactions(
    session: Session,
    frame: pd.DataFrame,
    actions: dict[str, ActionRule],
    user_ids: set[str],
    item_ids: set[str],
    source: RowSource,
) -> None:
    """Refuse the whole bundle, naming the row, if one interaction would be refused by the
    API (``ingest_events``: the action table, the id and field rules of ``InteractionIn``,
    one target, nobody acting on themselves, known users and items) or by the store.

    ``frame`` is indexed by row position (0, 1, ...), which ``source`` turns into a line.
    """
    if frame.empty:
        return
    for field in ("event_id", "user_id", "action"):
        if field not in frame.columns:
            raise InvalidInput(f"{source.name}: the interactions have no {field!r} column")
        missing = frame[field].isna().to_numpy()
        if missing.any():
            raise _bad_row(source, _first(missing), field, f"empty {field.replace('_', ' ')}")
    limit = getattr(Interaction.__table__.c.event_id.type, "length", None) or 128
    lengths = frame["event_id"].astype(str).str.len().to_numpy()
    too_long = (lengths < 1) | (lengths > limit)
    if too_long.any():
        raise _bad_row(source, _first(too_long), "event_id", f"event ids are 1-{limit} characters")
    _check_fields(frame, source)
    unknown = ~frame["action"].isin(list(actions)).to_numpy()
    if unknown.any():
        row, known = _first(unknown), ", ".join(sorted(actions))
        action = frame["action"].iloc[row]
        raise _bad_row(source, row, "action", f"unknown action {action!r}; known: {known}")
    none = pd.Series(None, index=frame.index, dtype=object)
    items = frame["item_id"] if "item_id" in frame.columns else none
    targets = frame["target_user_id"] if "target_user_id" in frame.columns else none
    both = (items.notna() & targets.notna()).to_numpy()
    if both.any():
        raise _bad_row(source, _first(both), None, "a row acts on an item or on a user, not both")
    themselves = (targets.notna() & (targets == frame["user_id"])).to_numpy()
    if themselves.any():
        raise _bad_row(source, _first(themselves), None, "a user cannot act on themselves")
    for field, refs, known_ids, column, what in (
        ("user_id", frame["user_id"], user_ids, User.id, "user"),
        ("target_user_id", targets, user_ids, User.id, "user"),
        ("item_id", items, item_ids, Item.id, "item"),
    ):
        wanted = [r for r in pd.unique(refs.dropna()) if r not in known_ids]
        absent = set(wanted) - existing_ids(session, column, wanted)
        if absent:
            row = _first(refs.isin(absent).to_numpy())
            raise _bad_row(source, row, field, f"unknown {what} {refs.iloc[row]!r}")
    if "occurred_at" in frame.columns:
        _check_times(frame["occurred_at"], source)


def _bad_row(source: RowSource, position: int, field: str | None, message: str) -> InvalidInput:
    """``FILE: line N, column 'C': message`` (no column when the whole row is at fault)."""
    where = source.at(position)
    if field is not None:
        where += f", column {source.column(field)!r}"
    return InvalidInput(f"{where}: {message}")


def _check_fields(frame: pd.DataFrame, source: RowSource) -> None:
    """Each field's distinct values through ``InteractionIn`` itself, so the import keeps the
    API's rules as they change (ids, lengths, ranges, finite numbers, no NUL), at the cost
    of one validation per distinct value rather than per row."""
    for field in _MODEL_CHECKED:
        if field not in frame.columns:
            continue
        values = frame[field]
        present = values.notna().to_numpy()
        for value in pd.unique(values[present]):
            plain = _plain_value(value)
            try:
                InteractionIn.model_validate({**_PROBE, field: plain})
            except ValueError as exc:
                row = _first(present & (values == value).fillna(False).to_numpy(dtype=bool))
                raise _bad_row(source, row, field, f"{_problem(exc)} (got {plain!r})") from exc


def _check_times(given: pd.Series, source: RowSource) -> None:
    """Times that are times, inside the API's range (its two ends decide); missing is fine:
    ``write_bundle`` stamps those rows with the load time."""
    times = pd.to_datetime(given, utc=True, errors="coerce")
    bad = (times.isna() & given.notna()).to_numpy()
    if bad.any():
        row = _first(bad)
        raise _bad_row(source, row, "occurred_at", f"not a time: {given.iloc[row]!r}")
    if times.isna().all():
        return
    for row in sorted({int(times.argmin()), int(times.argmax())}):
        try:
            InteractionIn.model_validate({**_PROBE, "timestamp": times.iloc[row].to_pydatetime()})
        except ValueError as exc:
            raise _bad_row(source, row, "occurred_at", _problem(exc)) from exc


def _records(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, Any]]:
    """Frame rows as dicts with NaN/NaT turned into None and numpy scalars into Python."""
    keep = [c for c in columns if c in frame.columns]
    sub = frame[keep].astype(object).where(frame[keep].notna(), None)
    records = sub.to_dict("records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                record[key] = value.item()
            elif isinstance(value, pd.Timestamp):
                record[key] = value.to_pydatetime()
            elif isinstance(value, np.ndarray):
                record[key] = value.tolist()
    return records


def write_bundle(
    runtime: Runtime,
    bundle: DataBundle,
    actions: dict[str, ActionRule],
    batch_size: int = 50_000,
    elo: Any = None,
    source: RowSource | None = None,
) -> dict[str, int]:
    """Load a generated or imported bundle into the store, all or nothing.

    Everything is checked before anything is written (ids, the action table and the field
    rules of the API, known users and items), then the bundle is written in one
    transaction, so a bad row leaves the store as it was; ``source`` says how to name a
    bad interaction row (file, line, column). Rows whose event id is already stored (or
    repeated) are skipped as duplicates, so a reload is idempotent; any other refusal is an
    error. Interactions without a time get the load time, as the API stamps events sent
    without one. With ``elo`` settings, the new swipes are replayed into desirability.

    Returns counts: ``users``, ``items``, ``interactions`` (created), ``users_updated``,
    ``items_updated`` (profiles and items that were already stored, now overwritten with
    the bundle's fields), ``duplicates`` (interaction rows skipped), ``stamped`` (rows
    given the load time), ``matches`` (created), ``matches_refused`` (``match`` rows
    between two people one of whom blocked the other, in the store or in the bundle: not
    stored, as ``POST /v1/events`` does not store them), and ``rated`` when ratings moved.
    """
    now = utcnow()
    source = source or RowSource(bundle.name, "interactions row")
    frame = bundle.interactions.reset_index(drop=True)
    user_cols = [c.name for c in User.__table__.columns if c.name not in ("created_at",)]
    item_cols = [c.name for c in Item.__table__.columns if c.name not in ("created_at",)]
    _check_ids(bundle.users, UserIn, "users", bundle.name)
    _check_ids(bundle.items, ItemIn, "items", bundle.name)
    users = _records(bundle.users, user_cols)
    items = _records(bundle.items, item_cols)
    for row in users:
        for key in ("seeking", "tags"):
            row[key] = list(row.get(key) or [])
        row.setdefault("attributes", {})
        row["attributes"] = row["attributes"] or {}
        if "birth_date" in row and row.get("age") is None:  # as upsert_users does
            born = row["birth_date"]
            row["age"] = None if born is None else age_from_birth_date(born)
    for row in items:
        row["tags"] = list(row.get("tags") or [])
        row["attributes"] = row.get("attributes") or {}
    people = "target_user_id" in frame and bool(frame["target_user_id"].notna().any())
    stats = {"users": 0, "items": 0, "interactions": 0, "stamped": 0, "matches": 0,
             "users_updated": 0, "items_updated": 0}  # fmt: skip
    with runtime.session() as session:
        known_users, known_items = {r["id"] for r in users}, {r["id"] for r in items}
        _check_interactions(session, frame, actions, known_users, known_items, source)
        if len(frame):
            times = frame.get("occurred_at", pd.Series(pd.NaT, index=frame.index))
            times = pd.to_datetime(times, utc=True)
            stats["stamped"] = int(times.isna().sum())
            frame = frame.assign(occurred_at=times.fillna(pd.Timestamp(now)))
            refused = _blocked_reported_matches(session, frame)
            stats["matches_refused"] = int(refused.sum())
            frame = frame[~refused]
        for kind, model, rows in (("users", User, users), ("items", Item, items)):
            if rows:
                upserted = upsert_rows(session, model, rows)
                stats[kind], stats[f"{kind}_updated"] = upserted.created, upserted.updated
        maybe_enqueue_safety_scan(session, runtime.settings, [u["id"] for u in users])
        swipes = frame.iloc[0:0]
        if elo is not None and people:  # only new swipes move ratings (reloads are no-ops)
            swipes = frame[frame["target_user_id"].notna()]
            seen = existing_ids(session, Interaction.event_id, swipes["event_id"].tolist())
            swipes = swipes[~swipes["event_id"].isin(seen)]
        for start in range(0, len(frame), batch_size):
            part = _interaction_columns(frame.iloc[start : start + batch_size], now)
            stats["interactions"] += _bulk_insert_interactions(session, part, source)
        if len(frame):
            lists_changed(session, everything=True)  # servers' copies of lists: all stale
        if people:
            stats["matches"] = sync_matches(session)
            if elo is not None and len(swipes):
                stats["rated"] = _replay_elo(session, swipes, elo)
    stats["duplicates"] = len(frame) - stats["interactions"]
    return stats


def _blocked_reported_matches(session: Session, frame: pd.DataFrame) -> pd.Series:
    """Which rows are reported matches (``match``) between two people one of whom blocked
    the other, by a block stored or in ``frame``."""
    none = pd.Series(False, index=frame.index)
    if "target_user_id" not in frame.columns:
        return none
    targets = frame["target_user_id"]
    is_match = (frame["action"] == "match") & targets.notna()
    if not is_match.any():
        return none

    def pair(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a < b else (b, a)

    blocks = frame[(frame["action"] == "block") & targets.notna()]
    pairs = {pair(a, b) for a, b in zip(blocks["user_id"], blocks["target_user_id"], strict=True)}
    people = sorted(set(frame.loc[is_match, "user_id"]) | set(targets[is_match]))
    for chunk in chunked(people, CHUNK):
        stored = select(Interaction.user_id, Interaction.target_user_id).where(
            Interaction.action == "block",
            or_(Interaction.user_id.in_(chunk), Interaction.target_user_id.in_(chunk)),
        )
        pairs |= {pair(a, b) for a, b in session.execute(stored) if b is not None}
    refused = [
        bool(m) and pair(a, b) in pairs
        for m, a, b in zip(is_match, frame["user_id"], targets, strict=True)
    ]
    return pd.Series(refused, index=frame.index)


def _replay_elo(session: Session, frame: pd.DataFrame, elo: Any) -> int:
    """Desirability from a bulk swipe log, replayed in time order on top of stored ratings."""

    people = pd.unique(pd.concat([frame["user_id"], frame["target_user_id"].dropna()]))
    stored = {}
    for chunk in chunked(list(people), CHUNK):
        stored.update(
            dict(session.execute(select(User.id, User.elo).where(User.id.in_(chunk))).all())
        )
    ratings = ratings_from_swipes(frame, elo.k_factor, elo.superlike_weight, elo.initial,
                                  ratings=stored)  # fmt: skip
    rows = [{"uid": k, "elo": float(v)} for k, v in ratings.items() if stored.get(k) != v]
    if rows:
        session.execute(
            USERS.update().where(USERS.c.id == bindparam("uid")).values(elo=bindparam("elo")),
            rows,
        )
    return len(rows)


def _interaction_columns(part: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The bundle's rows in table column order, times as naive UTC, NaN as None.

    A row without a time gets ``now`` (the load time); ``received_at`` is ``now`` too.
    """
    out = pd.DataFrame(index=part.index)
    stamp = pd.Timestamp(now).tz_convert("UTC") if now.tzinfo else pd.Timestamp(now, tz="UTC")
    for column in INTERACTION_COLUMNS:
        if column in part.columns:
            values = part[column]
        elif column == "sample_weight":
            values = pd.Series(1.0, index=part.index)
        else:
            values = pd.Series(None, index=part.index, dtype=object)
        if column in ("occurred_at", "received_at"):
            values = pd.to_datetime(values, utc=True).fillna(stamp).dt.tz_localize(None)
        out[column] = values
    for column in ("position", "duration_ms"):
        out[column] = out[column].astype("Int64")
    return out.astype(object).where(out.notna(), None)


def _refused(session: Session, exc: BaseException) -> bool:
    """Whether ``exc`` is the store refusing a row (a constraint, a value it cannot hold)."""
    dbapi = session.get_bind().dialect.loaded_dbapi
    driver_error = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    return isinstance(driver_error, dbapi.IntegrityError | dbapi.DataError)


def _insert_interaction_rows(session: Session, part: pd.DataFrame) -> int:
    """Insert rows on the driver, skipping event ids already stored; returns rows written
    (:func:`~matchwise.db.queries.insert_interactions`)."""
    return insert_interactions(session, part.itertuples(index=False, name=None))


def _probe(session: Session, part: pd.DataFrame) -> str | None:
    """Try ``part`` in a savepoint that is always rolled back: the store's complaint, or None."""
    savepoint = session.begin_nested()
    try:
        _insert_interaction_rows(session, part)
    except Exception as exc:
        if not _refused(session, exc):
            raise
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    finally:
        savepoint.rollback()
    return None


def _first_refused(session: Session, part: pd.DataFrame) -> tuple[int, str | None]:
    """The position of the first row the store refuses, and why, by bisection.

    Rows are independent (they conflict only on event id, which is skipped), so the half
    that fails holds a refused row: about 2 x len(part) rows tried, in log2 savepoints.
    """
    low, high = 0, len(part)
    while high - low > 1:
        middle = (low + high) // 2
        if _probe(session, part.iloc[low:middle]) is None:
            low = middle
        else:
            high = middle
    return int(part.index[low]), _probe(session, part.iloc[low : low + 1])


def _bulk_insert_interactions(
    session: Session, part: pd.DataFrame, source: RowSource | None = None
) -> int:
    """Fast path for bulk loads: rows written, skipping only event ids already stored.

    Any other refusal by the store is an error naming the row (``source`` turns the
    frame's index, the row position, into a file and line); the caller's transaction
    is then rolled back, so nothing of the load stays.
    """
    if part.empty:
        return 0
    try:
        with session.begin_nested():
            return _insert_interaction_rows(session, part)
    except Exception as exc:
        if not _refused(session, exc):
            raise
        position, reason = _first_refused(session, part)
        where = (source or RowSource("interactions")).at(position)
        reason = reason or str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InvalidInput(f"{where}: the store refused the row: {reason}") from exc
