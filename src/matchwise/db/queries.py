"""Read queries shared by recommendation, training and the admin views."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from sqlalchemy import String, any_, bindparam, func, literal_column, or_, select, text, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from matchwise.actions import (
    DECIDED_ACTIONS,
    HIDES_ACTOR_FROM_TARGET,
    LIKE_ACTIONS,
    SWIPE_ACTIONS,
)
from matchwise.db import driver
from matchwise.db.engine import AsyncHeldReads, HeldReads
from matchwise.db.tables import Interaction, Item, User
from matchwise.errors import NotFound

USER_COLUMNS = [
    "id", "age", "gender", "seeking", "age_min", "age_max", "max_distance_km",
    "latitude", "longitude", "city", "bio", "tags", "elo", "active", "moderation_status",
]  # fmt: skip
ITEM_COLUMNS = [
    "id", "kind", "title", "text", "category", "city", "owner_id", "starts_at", "tags", "active",
]  # fmt: skip


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"unknown user {user_id!r}")
    return user


CHUNK = 500  # ids per IN (...) query; well under SQLite's variable limit


def chunked(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def existing_ids(session: Session, column: Any, ids: Iterable[str], chunk: int = CHUNK) -> set[str]:
    """Which of ``ids`` are present in ``column``: on PostgreSQL one ``= ANY(array)`` query
    (one bound value, however many ids); on SQLite chunked, well under its limit of bound
    variables."""
    wanted = sorted({i for i in ids if i is not None})
    found: set[str] = set()
    if not wanted:
        return found
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("ids", wanted, type_=postgresql.ARRAY(column.type))
        return set(session.scalars(select(column).where(column == any_(array))))
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        found.update(session.scalars(select(column).where(column.in_(part))))
    return found


#: The interactions table's columns a write supplies (all but the generated id), in order.
INTERACTION_COLUMNS = [c.name for c in Interaction.__table__.columns if c.name != "id"]


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _sqlite_value(value: Any) -> Any:
    """SQLAlchemy's own SQLite DateTime text format, so comparisons in SQL stay right."""
    if isinstance(value, datetime):
        return _naive_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def insert_interactions(session: Session, rows: Iterable[Sequence[Any]]) -> int:
    """Insert interaction rows (tuples in :data:`INTERACTION_COLUMNS` order) on the driver,
    inside the session's transaction, skipping event ids already stored; returns rows
    written. Aware times are stored as naive UTC.

    PostgreSQL: COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT
    (event_id) DO NOTHING. SQLite: executemany of INSERT … ON CONFLICT (event_id) DO
    NOTHING. Only duplicate event ids are skipped: a NOT NULL, CHECK or foreign key failure
    raises (SQLite's INSERT OR IGNORE would skip those rows silently too). Either is a
    fraction of SQLAlchemy's multi-row VALUES with thousands of bound parameters, whose
    query text the driver parses again on every batch.
    """
    columns = ", ".join(INTERACTION_COLUMNS)
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None  # a live connection inside the session's transaction
    if connection.dialect.name == "postgresql":
        # the written columns only: the id's default would draw (and waste) a sequence
        # value for every staged row
        session.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS bulk_interactions_in ON COMMIT DELETE ROWS "
                f"AS SELECT {columns} FROM interactions WITH NO DATA"
            )
        )
        copy_sql = f"COPY bulk_interactions_in ({columns}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(tuple(_naive_utc(v) for v in row))
        result = session.execute(
            text(
                f"INSERT INTO interactions ({columns}) SELECT {columns} FROM bulk_interactions_in "
                "ON CONFLICT (event_id) DO NOTHING"
            )
        )
        session.execute(text("DELETE FROM bulk_interactions_in"))
        return int(getattr(result, "rowcount", 0) or 0)
    before = raw.total_changes
    marks = ", ".join("?" for _ in INTERACTION_COLUMNS)
    raw.executemany(
        f"INSERT INTO interactions ({columns}) VALUES ({marks}) ON CONFLICT (event_id) DO NOTHING",
        [tuple(_sqlite_value(v) for v in row) for row in rows],
    )
    return int(raw.total_changes - before)


def users_frame(
    session: Session, only_visible: bool = False, ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """All profiles as a frame (only active, unflagged ones with ``only_visible``; only
    those of ``ids`` when given, in no particular order)."""
    columns = [getattr(User, c) for c in USER_COLUMNS]
    stmt = select(*columns)
    if ids is not None:
        stmt = stmt.where(User.id.in_(list(ids)))
    if only_visible:
        stmt = stmt.where(User.active.is_(True), User.moderation_status == "ok")
    rows = session.execute(stmt).all()
    return pd.DataFrame(rows, columns=USER_COLUMNS)


def items_frame(session: Session, only_active: bool = False) -> pd.DataFrame:
    columns = [getattr(Item, c) for c in ITEM_COLUMNS]
    stmt = select(*columns)
    if only_active:
        stmt = stmt.where(Item.active.is_(True))
    rows = session.execute(stmt).all()
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


def user_history(session: Session, user_id: str) -> pd.DataFrame:
    """Everything ``user_id`` did, oldest first."""
    stmt = (
        select(
            Interaction.item_id,
            Interaction.target_user_id,
            Interaction.action,
            Interaction.value,
            Interaction.occurred_at,
        )
        .where(Interaction.user_id == user_id)
        .order_by(Interaction.occurred_at, Interaction.id)
    )
    rows = session.execute(stmt).all()
    return pd.DataFrame(
        rows, columns=["item_id", "target_user_id", "action", "value", "occurred_at"]
    )


@dataclass
class History:
    """One user's events, oldest first, as plain lists: the online path's input.

    Lighter than a DataFrame on purpose: it is built on every live request.
    """

    item_ids: list[str | None]
    target_user_ids: list[str | None]
    actions: list[str]
    values: list[float | None]

    def __len__(self) -> int:
        return len(self.actions)

    def count(self, exclude: frozenset[str] = frozenset({"impression"})) -> int:
        return sum(1 for a in self.actions if a not in exclude)

    def items_with(self, actions: Collection[str], min_value: float | None = None) -> list[str]:
        """Items acted on with one of ``actions`` (or rated at least ``min_value``)."""
        out = []
        for item, action, value in zip(self.item_ids, self.actions, self.values, strict=True):
            if item is None:
                continue
            if action in actions or (min_value is not None and (value or 0) >= min_value):
                out.append(item)
        return out

    def targets(self) -> set[str]:
        return {t for t in self.target_user_ids if t is not None}


@dataclass(frozen=True)
class Profile:
    """What the online path needs of the requesting user (not the whole ORM row)."""

    id: str
    tags: list[str]
    city: str | None


_PROFILE = select(User.id, User.tags, User.city).where(User.id == bindparam("user_id"))


def serving_profile(session: Session, user_id: str) -> Profile:
    """The requesting user's id, tags and city; raises NotFound for an unknown user.

    A driver-level read, not ``session.get``: the ORM costs more than the query here.
    """
    found = driver.rows(session.connection(), _PROFILE, {"user_id": user_id})
    if not found:
        raise NotFound(f"unknown user {user_id!r}")
    user, tags, city = found[0]
    return Profile(user, list(driver.as_json(tags) or []), city)


def history_of(session: Session, user_id: str) -> History:
    return _history(driver.rows(session.connection(), _HISTORY, {"user_id": user_id}))


def serving_inputs(reads: HeldReads, user_id: str) -> tuple[Profile, History]:
    """:func:`serving_profile` and :func:`history_of` on held read connections, without a
    session: the API's live path, which then opens no transaction (its BEGIN and COMMIT
    cost more than the two queries)."""
    profile = _profile_of(driver.rows_from(reads, _PROFILE, {"user_id": user_id}), user_id)
    return profile, _history(driver.rows_from(reads, _HISTORY, {"user_id": user_id}))


async def serving_inputs_awaited(reads: AsyncHeldReads, user_id: str) -> tuple[Profile, History]:
    """:func:`serving_inputs` awaited on the event loop (PostgreSQL): the loop serves
    other requests during the two round trips instead of waiting for them."""
    found = await driver.rows_awaited(reads, _PROFILE, {"user_id": user_id})
    profile = _profile_of(found, user_id)
    return profile, _history(await driver.rows_awaited(reads, _HISTORY, {"user_id": user_id}))


def _profile_of(found: list, user_id: str) -> Profile:
    if not found:
        raise NotFound(f"unknown user {user_id!r}")
    user, tags, city = found[0]
    return Profile(user, list(driver.as_json(tags) or []), city)


def _history(rows: list) -> History:
    if not rows:
        return History([], [], [], [])
    items, targets, actions, values = (list(col) for col in zip(*rows, strict=True))
    return History(items, targets, actions, values)


_HISTORY = (
    select(Interaction.item_id, Interaction.target_user_id, Interaction.action, Interaction.value)
    .where(Interaction.user_id == bindparam("user_id"))
    .order_by(Interaction.occurred_at, Interaction.id)
)


def received_by(session: Session, user_id: str, actions: list[str]) -> set[str]:
    """Who did one of ``actions`` to ``user_id`` (e.g. who already liked them)."""
    stmt = select(Interaction.user_id).where(
        Interaction.target_user_id == user_id, Interaction.action.in_(actions)
    )
    return set(session.scalars(stmt))


def excluded_people(session: Session, user_id: str) -> set[str]:
    """People never to show ``user_id``: everyone they decided on (liked, passed,
    blocked...) and everyone who refused them or already matched them. Someone who
    liked them stays: a like back is a match."""
    decided = select(Interaction.target_user_id).where(
        Interaction.user_id == user_id,
        Interaction.target_user_id.is_not(None),
        Interaction.action.in_(sorted(DECIDED_ACTIONS)),
    )
    refused = select(Interaction.user_id).where(
        Interaction.target_user_id == user_id,
        Interaction.action.in_(sorted(HIDES_ACTOR_FROM_TARGET)),
    )
    return set(session.scalars(decided.union(refused)))


def _one_of(column: Any, actions: Collection[str]) -> Any:
    """``column IN ('like', ...)`` with the action names written into the SQL: the
    statement is compiled once and run at the driver level (``db.driver``), which has no
    way to expand a list parameter. Only the fixed action vocabulary goes here."""
    names = sorted(actions)
    assert all(re.fullmatch(r"[a-z_]+", n) for n in names), names
    return column.in_([literal_column(f"'{n}'") for n in names])


def not_excluded(kind: str, viewer: Any, candidate: Any) -> Any:
    """SQL: ``candidate`` may still be shown to ``viewer`` (the rule of
    :func:`excluded_people`; for items, the viewer has not decided on the item)."""
    mine = select(Interaction.id).where(
        Interaction.user_id == viewer, _one_of(Interaction.action, DECIDED_ACTIONS)
    )
    if kind == "item":
        return ~mine.where(Interaction.item_id == candidate).exists()
    theirs = select(Interaction.id).where(
        Interaction.user_id == candidate,
        Interaction.target_user_id == viewer,
        _one_of(Interaction.action, HIDES_ACTOR_FROM_TARGET),
    )
    return ~mine.where(Interaction.target_user_id == candidate).exists() & ~theirs.exists()


def blocked_between(session: Session, user_id: str) -> set[str]:
    """Users blocked by ``user_id`` or who blocked them: hidden both ways."""
    stmt = select(Interaction.user_id, Interaction.target_user_id).where(
        Interaction.action == "block",
        or_(Interaction.user_id == user_id, Interaction.target_user_id == user_id),
    )
    return {a if b == user_id else b for a, b in session.execute(stmt) if a and b}


@overload
def count_by_target(
    session: Session, actions: list[str], kind: str = ..., *, as_dict: Literal[False] = ...
) -> pd.Series: ...
@overload
def count_by_target(
    session: Session, actions: list[str], kind: str = ..., *, as_dict: Literal[True]
) -> dict[str, int]: ...
def count_by_target(
    session: Session, actions: list[str], kind: str = "item", *, as_dict: bool = False
) -> pd.Series | dict[str, int]:
    """How often each item (or user) received one of ``actions``: a popularity signal."""
    column = Interaction.item_id if kind == "item" else Interaction.target_user_id
    stmt = (
        select(column, func.count())
        .where(Interaction.action.in_(actions), column.is_not(None))
        .group_by(column)
    )
    counts = {k: v for k, v in session.connection().execute(stmt)}
    return counts if as_dict else pd.Series(counts, dtype=float)


_CATALOGUE = select(Item.id, Item.title, Item.category, Item.city, Item.starts_at, Item.tags).where(
    Item.active.is_(True)
)


def catalogue_columns(session: Session) -> dict[str, list[Any]]:
    """Active items as one list per column, read at the driver level (see ``db.driver``:
    it runs beside live requests and must not hold the GIL for long)."""
    names = ["id", "title", "category", "city", "starts_at", "tags"]
    found = driver.rows(session.connection(), _CATALOGUE)
    if not found:
        return {n: [] for n in names}
    columns = dict(zip(names, (list(c) for c in zip(*found, strict=True)), strict=True))
    columns["starts_at"] = [driver.as_utc(v) for v in columns["starts_at"]]
    columns["tags"] = [driver.as_json(v) for v in columns["tags"]]
    return columns


def hidden_clause(kind: str) -> Any:
    """Candidates that must not be shown now: inactive, or held/removed by moderation."""
    if kind == "user":
        return or_(User.active.is_(False), User.moderation_status != "ok")
    return Item.active.is_(False)


def hidden_candidates(session: Session, ids: list[str], kind: str) -> set[str]:
    """Which of ``ids`` must not be shown now (see :func:`hidden_clause`), or are no longer
    stored at all (an erased person still in a catalogue loaded before the erasure). On
    PostgreSQL one ``= ANY(array)`` query (a block refresh asks about ~10^5 ids: 1,000-id
    ``IN`` lists spent more time compiling parameters than reading); chunked on SQLite."""
    table = User if kind == "user" else Item
    shown: set[str] = set()
    if not ids:
        return shown
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("ids", list(ids), type_=postgresql.ARRAY(table.id.type))
        shown.update(session.scalars(select(table.id).where(table.id == any_(array),
                                                            ~hidden_clause(kind))))  # fmt: skip
        return set(ids) - shown
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        shown.update(session.scalars(select(table.id).where(table.id.in_(chunk),
                                                            ~hidden_clause(kind))))  # fmt: skip
    return set(ids) - shown


# --- what training reads ----------------------------------------------------------------


def training_interactions(session: Session, domain: str) -> pd.DataFrame:
    """Raw events of one domain: ``user_id, item_id, action, value, occurred_at`` (UTC).

    Read column-wise through Core with the time as the driver gives it (SQLite's text,
    PostgreSQL's naive UTC datetime) and converted once, vectorised: building a million
    ORM rows and a datetime object per row took most of a 1M-event dataset build.
    """
    target = Interaction.item_id if domain == "items" else Interaction.target_user_id
    names = ["user_id", "item_id", "action", "value", "occurred_at"]
    query = (
        select(
            Interaction.user_id,
            target,
            Interaction.action,
            Interaction.value,
            type_coerce(Interaction.occurred_at, String),
        )
        .where(target.is_not(None))
        .order_by(Interaction.occurred_at, Interaction.id)
    )
    rows = session.connection().execute(query).all()
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in zip(names, columns, strict=True)}
    )
    frame["value"] = pd.to_numeric(frame["value"]).astype(np.float64)
    times = frame["occurred_at"]
    text_times = len(times) > 0 and isinstance(times.iloc[0], str)
    frame["occurred_at"] = pd.to_datetime(times, utc=True, format="ISO8601" if text_times else None)
    return frame


def training_users(session: Session) -> pd.DataFrame:
    """Profile features for models; private fields (name, email, exact location) excluded.

    ``photo_vector`` is the mean of the app-supplied photo embeddings (seed 001's optional
    image modality); it is left out when nobody has one, and None for people without.
    ``attributes`` (the app's own profile answers, e.g. a sign-up survey the pairwise
    people model reads) travel as JSON text, left out when nobody has any.
    """
    return training_users_frame(session.execute(select(*TRAINING_USER_COLUMNS)).all())


#: What :func:`training_users` reads of each person, in its order.
TRAINING_USER_COLUMNS = (User.id, User.age, User.gender, User.city, User.bio, User.tags,
                         User.elo, User.photo_embeddings, User.attributes)  # fmt: skip


def training_users_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """:func:`training_users`' frame from its rows (one tuple of Python values a person,
    :data:`TRAINING_USER_COLUMNS`; PostgreSQL's COPY read builds the same tuples)."""
    frame = pd.DataFrame(rows, columns=[c.key for c in TRAINING_USER_COLUMNS])
    answers = frame.pop("attributes")
    if answers.map(bool).any():
        frame["attributes"] = [json.dumps(a, sort_keys=True) if a else None for a in answers]
    photos = frame.pop("photo_embeddings")
    if photos.notna().any():
        frame["photo_vector"] = [
            np.asarray(p, dtype=np.float32).mean(axis=0).tolist() if p else None for p in photos
        ]
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def training_items(session: Session) -> pd.DataFrame:
    cols = [Item.id, Item.kind, Item.title, Item.text, Item.category, Item.city, Item.owner_id,
            Item.starts_at, Item.tags]  # fmt: skip
    frame = pd.DataFrame(session.execute(select(*cols)).all(), columns=[c.key for c in cols])
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def swipe_counts_query(by: str) -> Any:
    """Likes and swipes each person received (``by="target"``) or gave (``"swiper"``) on
    other people, grouped by that person: ``(user id, likes, swipes)``, one pass over the
    swipes where four counts each took one."""
    key = Interaction.target_user_id if by == "target" else Interaction.user_id
    return (
        select(key,
               func.count().filter(Interaction.action.in_(sorted(LIKE_ACTIONS))),
               func.count().filter(Interaction.action.in_(sorted(SWIPE_ACTIONS))))
        .where(Interaction.action.in_(sorted(LIKE_ACTIONS | SWIPE_ACTIONS)),
               Interaction.target_user_id.is_not(None))
        .group_by(key)
    )  # fmt: skip


def swipe_counts(session: Session, by: str) -> pd.DataFrame:
    """:func:`swipe_counts_query`'s rows as a frame indexed by user id, float columns
    ``likes`` and ``swipes``."""
    rows = session.connection().execute(swipe_counts_query(by)).all()
    frame = pd.DataFrame(rows, columns=["id", "likes", "swipes"]).set_index("id")
    return frame.astype(float)
