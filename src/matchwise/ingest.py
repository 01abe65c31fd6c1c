"""Ingestion: validate, de-duplicate by event id, write one transaction per batch.

A batch is all or nothing: one bad event rejects it whole with a message naming the
event and the field, and nothing of it is written. A retried batch is recognised by
its event ids and never double counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, and_, bindparam, case, delete, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from matchwise.actions import DECIDED_ACTIONS, HIDES_ACTOR_FROM_TARGET, LIKE_ACTIONS, ActionRule
from matchwise.data.bundle import DataBundle
from matchwise.db import queries
from matchwise.db.engine import session_scope
from matchwise.db.tables import Interaction, Item, Match, User, utcnow
from matchwise.errors import BatchTooLarge, InvalidInput, NotFound
from matchwise.jobs import maybe_enqueue_refresh, maybe_enqueue_safety_scan
from matchwise.models.elo import NEGATIVE_ACTIONS, POSITIVE_ACTIONS, update
from matchwise.online_cache import note_seen, note_visibility
from matchwise.schemas import (
    Event,
    ImpressionEvent,
    IngestResult,
    InteractionIn,
    InteractionOut,
    ItemIn,
    MatchEvent,
    SwipeBatchEvent,
    UpsertResult,
    UserIn,
    age_on,
)
from matchwise.settings import Settings

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN (...) query; well under SQLite's variable limit


USERS = cast(Table, User.__table__)


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


existing_ids = queries.existing_ids


def _upsert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> UpsertResult:
    if not rows:
        return UpsertResult(created=0, updated=0)
    table = model.__table__
    present = existing_ids(session, table.c.id, [r["id"] for r in rows])
    now = utcnow()
    for row in rows:
        row.setdefault("updated_at", now)
    columns = [c for c in rows[0] if c != "id"]
    for chunk in _chunks(rows, 2000):
        stmt = _insert(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={c: stmt.excluded[c] for c in columns}
        )
        session.execute(stmt, list(chunk))
    created = len({r["id"] for r in rows} - present)
    note_visibility(session, "user" if model is User else "item", [r["id"] for r in rows])
    return UpsertResult(created=created, updated=len(rows) - created)


def _unique_ids(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for index, ident in enumerate(ids):
        if ident in seen:
            raise InvalidInput(f"{what}[{index}].id: {ident!r} appears twice in the batch")
        seen.add(ident)


def upsert_users(session: Session, users: Sequence[UserIn]) -> UpsertResult:
    """Insert or update profiles by id (a batch is one transaction)."""
    _unique_ids([u.id for u in users], "users")
    rows = [u.model_dump() for u in users]
    for row in rows:
        if row["age"] is None and row["birth_date"] is not None:
            row["age"] = age_from_birth_date(row["birth_date"])
    return _upsert(session, User, rows)


def store_users(session: Session, settings: Settings, users: Sequence[UserIn]) -> UpsertResult:
    """``POST /v1/users``: upsert the batch and queue a safety scan of the profiles when a
    safety model is active, in one transaction."""
    check_batch_size(len(users), settings.max_batch_size, "users")
    result = upsert_users(session, users)
    maybe_enqueue_safety_scan(session, settings, [u.id for u in users])
    return result


def store_items(session: Session, settings: Settings, items: Sequence[ItemIn]) -> UpsertResult:
    """``POST /v1/items``: upsert the batch in one transaction."""
    check_batch_size(len(items), settings.max_batch_size, "items")
    return upsert_items(session, items)


def store_events(session: Session, settings: Settings, events: Sequence[Event]) -> IngestResult:
    """``POST /v1/events``: the batch with the configured actions, sampling and Elo."""
    check_batch_size(len(events), settings.max_batch_size, "events")
    return ingest_events(session, events, settings.action_table,
                         sample_rate=settings.analytics_sample_rate, elo=settings.elo)  # fmt: skip


def check_batch_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise BatchTooLarge(
            f"{what}: {size:,} in one batch, over max_batch_size ({limit:,}); split it"
        )


def upsert_items(session: Session, items: Sequence[ItemIn]) -> UpsertResult:
    """Insert or update items by id."""
    _unique_ids([i.id for i in items], "items")
    return _upsert(session, Item, [i.model_dump() for i in items])


def age_from_birth_date(born: Any, today: datetime | None = None) -> int:
    return age_on(born, (today or datetime.now(UTC)).date())


# --- events -----------------------------------------------------------------------


@dataclass
class _Row:
    """One interaction row to write, with where it came from for error messages."""

    where: str
    values: dict[str, Any]


def _event_id(event_id: str | None, payload: dict[str, Any]) -> str:
    """The caller's id, or a content hash when the event carries a timestamp (so a retry
    of the same event is recognised); events with neither get a random id."""
    if event_id:
        return event_id
    if payload.get("occurred_at") is not None:
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return "h" + hashlib.sha256(blob).hexdigest()[:40]
    return "r" + uuid.uuid4().hex


def _expand(index: int, event: Event, now: datetime) -> list[_Row]:
    """Turn one wire event into interaction rows (impressions and swipe batches fan out)."""
    where = f"events[{index}]"
    if isinstance(event, InteractionIn):
        values = {
            "user_id": event.user_id,
            "item_id": event.item_id,
            "target_user_id": event.target_user_id,
            "action": event.action,
            "value": event.value,
            "position": event.position,
            "duration_ms": event.duration_ms,
            "session_id": event.session_id,
            "context_hash": event.context_hash,
            "model_version": event.model_version,
            "route": event.route,
            "occurred_at": event.timestamp,
        }
        values["event_id"] = _event_id(event.event_id, values)
        return [_Row(where, values)]
    if isinstance(event, ImpressionEvent):
        base = _event_id(
            event.event_id,
            {
                "user_id": event.user_id,
                "candidates": event.candidate_ids,
                "occurred_at": event.timestamp,
            },
        )
        positions = event.positions or list(range(1, len(event.candidate_ids) + 1))
        target = "target_user_id" if event.candidate_kind == "user" else "item_id"
        return [
            _Row(
                f"{where}.candidate_ids[{j}]",
                {
                    "event_id": f"{base}:{j}",
                    "user_id": event.user_id,
                    target: candidate,
                    "action": "impression",
                    "position": positions[j],
                    "context_hash": event.context_hash,
                    "model_version": event.model_version,
                    "route": event.route,
                    "occurred_at": event.timestamp,
                },
            )
            for j, candidate in enumerate(event.candidate_ids)
        ]
    if isinstance(event, SwipeBatchEvent):
        base = _event_id(
            event.event_id,
            {
                "user_id": event.user_id,
                "swipes": [s.model_dump() for s in event.swipes],
                "occurred_at": event.timestamp,
            },
        )
        return [
            _Row(
                f"{where}.swipes[{j}]",
                {
                    "event_id": f"{base}:{j}",
                    "user_id": event.user_id,
                    "target_user_id": swipe.candidate_id,
                    "action": swipe.action,
                    "duration_ms": swipe.duration_ms,
                    "session_id": event.session_id,
                    "occurred_at": event.timestamp,
                },
            )
            for j, swipe in enumerate(event.swipes)
        ]
    if isinstance(event, MatchEvent):
        values = {
            "user_id": event.user_id,
            "target_user_id": event.matched_user_id,
            "action": "match",
            "occurred_at": event.timestamp,
        }
        values["event_id"] = _event_id(event.event_id, values)
        return [_Row(where, values)]
    raise InvalidInput(f"{where}: unsupported event type {type(event).__name__}")


def _validate_rows(session: Session, rows: list[_Row], actions: dict[str, ActionRule]) -> None:
    for row in rows:
        action = row.values["action"]
        if action not in actions:
            known = ", ".join(sorted(actions))
            raise InvalidInput(f"{row.where}.action: unknown action {action!r}; known: {known}")
        if row.values.get("user_id") == row.values.get("target_user_id"):
            raise InvalidInput(f"{row.where}: a user cannot act on themselves")
    user_refs = [r.values["user_id"] for r in rows] + [
        r.values["target_user_id"] for r in rows if r.values.get("target_user_id")
    ]
    known_users = existing_ids(session, User.id, user_refs)
    item_refs = [r.values["item_id"] for r in rows if r.values.get("item_id")]
    known_items = existing_ids(session, Item.id, item_refs)
    for row in rows:
        for field in ("user_id", "target_user_id"):
            ident = row.values.get(field)
            if ident is not None and ident not in known_users:
                raise NotFound(f"{row.where}.{field}: unknown user {ident!r}")
        item = row.values.get("item_id")
        if item is not None and item not in known_items:
            raise NotFound(f"{row.where}.item_id: unknown item {item!r}")


#: Non-essential analytics events, kept only at ``analytics_sample_rate``.
SAMPLED_ACTIONS = frozenset({"impression", "dwell"})


def keep_sample(event_id: str, rate: float) -> bool:
    """Deterministic by event id, so a retried event gets the same decision."""
    if rate >= 1.0:
        return True
    bucket = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], "big") / 2.0**64
    return bucket < rate


def ingest_events(
    session: Session,
    events: Sequence[Event],
    actions: dict[str, ActionRule],
    now: datetime | None = None,
    sample_rate: float = 1.0,
    elo: Any = None,
) -> IngestResult:
    """Validate and write a batch inside the caller's transaction.

    Raises :class:`InvalidInput` / :class:`NotFound` before writing anything when any
    event is bad, so the caller's rollback leaves the store as it was. Impressions and
    dwell events are kept at ``sample_rate`` with weight ``1 / sample_rate`` so counts
    stay unbiased.
    """
    now = now or utcnow()
    rows = [row for i, event in enumerate(events) for row in _expand(i, event, now)]
    for row in rows:
        if row.values.get("occurred_at") is None:
            row.values["occurred_at"] = now
    _validate_rows(session, rows, actions)

    sampled_out = 0
    if sample_rate < 1.0:
        kept = []
        for row in rows:
            if row.values["action"] in SAMPLED_ACTIONS:
                if not keep_sample(row.values["event_id"], sample_rate):
                    sampled_out += 1
                    continue
                row.values["sample_weight"] = 1.0 / sample_rate
            kept.append(row)
        rows = kept

    seen_in_batch: set[str] = set()
    fresh: list[dict[str, Any]] = []
    stored = existing_ids(session, Interaction.event_id, [r.values["event_id"] for r in rows])
    for row in rows:
        event_id = row.values["event_id"]
        if event_id in stored or event_id in seen_in_batch:
            continue
        seen_in_batch.add(event_id)
        fresh.append(row.values)
    written = _write_interactions(session, fresh)
    _note_decisions(session, fresh)
    if elo is not None:
        apply_elo(session, fresh, elo.k_factor, elo.superlike_weight, elo.initial)

    # every pair this batch may match or unmatch, locked in one order: two batches never
    # wait on each other's pairs in a cycle, and a block and a like back on one pair
    # never pass each other
    pairs = {_pair(v["user_id"], v["target_user_id"]) for v in fresh
             if v.get("target_user_id") and v["action"] in PAIR_ACTIONS}  # fmt: skip
    for a, b in sorted(pairs):
        _lock_pair(session, a, b)
    matches: list[tuple[str, str]] = []
    for values in fresh:
        if values["action"] == "block" and values.get("target_user_id"):
            dissolve_match(session, values["user_id"], values["target_user_id"])
        elif values["action"] == "match":
            pair = _create_match(session, values["user_id"], values["target_user_id"], now,
                                 locked=True)  # fmt: skip
            if pair:
                matches.append(pair)
        elif values["action"] in LIKE_ACTIONS and values.get("target_user_id"):
            pair = maybe_create_match(session, values["user_id"], values["target_user_id"], now,
                                      locked=True)  # fmt: skip
            if pair:
                matches.append(pair)
    return IngestResult(
        written=written,
        duplicates=len(rows) - written,
        sampled_out=sampled_out,
        matches_created=matches,
    )


def _write_interactions(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping event ids another writer stored meanwhile; returns rows written."""
    if not rows:
        return 0
    columns = [c.name for c in Interaction.__table__.columns if c.name != "id"]
    full = [{c: r.get(c) for c in columns} for r in rows]
    now = utcnow()
    for r in full:
        r["received_at"] = now
        if r["sample_weight"] is None:
            r["sample_weight"] = 1.0
    written = 0
    for chunk in _chunks(full, 5000):
        stmt = (
            _insert(session, Interaction.__table__)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(Interaction.__table__.c.id)
        )
        written += len(session.execute(stmt, list(chunk)).all())
    return written


def _note_decisions(session: Session, rows: list[dict[str, Any]]) -> None:
    """Who must leave whose lists now (the online cache learns after the commit): the
    candidate a user decided on, and the user who refused or matched someone."""
    people: set[tuple[str, str]] = set()
    items: set[tuple[str, str]] = set()
    for r in rows:
        if r["action"] in DECIDED_ACTIONS:
            if r.get("target_user_id"):
                people.add((r["user_id"], r["target_user_id"]))
            elif r.get("item_id"):
                items.add((r["user_id"], r["item_id"]))
        if r.get("target_user_id") and r["action"] in HIDES_ACTOR_FROM_TARGET:
            people.add((r["target_user_id"], r["user_id"]))
    if people:
        note_seen(session, "user", people)
    if items:
        note_seen(session, "item", items)


def apply_elo(
    session: Session,
    rows: list[dict[str, Any]],
    k_factor: float,
    superlike_weight: float,
    initial: float = 1500.0,
) -> int:
    """Update desirability (Patra's elo_update) for the swipes in ``rows``, in order.

    The swiper's rating is the opponent's strength: a like from a highly rated person
    lifts the target more. Only targets move, so only their rows are locked (PostgreSQL),
    in id order, ``FOR NO KEY UPDATE``: concurrent swipes on one person queue up and each
    reads the rating the previous one wrote, and the lock does not conflict with the key
    share locks that inserting the swipes took through the foreign keys (``FOR UPDATE``
    did, which deadlocked many people liking one person at once). Swipers' ratings are
    read as committed.
    """
    swipes = [
        r for r in rows
        if r.get("target_user_id") and r["action"] in POSITIVE_ACTIONS | NEGATIVE_ACTIONS
    ]  # fmt: skip
    if not swipes:
        return 0
    targets = sorted({r["target_user_id"] for r in swipes})
    people = sorted({r["user_id"] for r in swipes} | set(targets))
    locked = select(User.id, User.elo).where(User.id.in_(targets)).order_by(User.id)
    if session.get_bind().dialect.name == "postgresql":
        locked = locked.with_for_update(key_share=True)
    current = {i: (e if e is not None else initial) for i, e in session.execute(locked)}
    swipers = [p for p in people if p not in current]
    if swipers:
        read = select(User.id, User.elo).where(User.id.in_(swipers))
        current.update({i: (e if e is not None else initial) for i, e in session.execute(read)})
    index = {p: j for j, p in enumerate(people)}
    ratings = np.array([current.get(p, initial) for p in people], dtype=np.float64)
    before = ratings.copy()
    update(
        ratings,
        np.array([index[r["user_id"]] for r in swipes]),
        np.array([index[r["target_user_id"]] for r in swipes]),
        [r["action"] for r in swipes],
        k_factor=k_factor,
        superlike_weight=superlike_weight,
    )
    changed = [
        {"uid": p, "elo": float(ratings[j])}
        for j, p in enumerate(people)
        if ratings[j] != before[j]
    ]
    if changed:
        session.execute(
            USERS.update().where(USERS.c.id == bindparam("uid")).values(elo=bindparam("elo")),
            changed,
        )
    return len(swipes)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _lock_pair(session: Session, a: str, b: str) -> None:
    """Serialise match creation for one pair across concurrent transactions.

    PostgreSQL: a transaction-scoped advisory lock on the pair, so the second of two
    simultaneous likes waits for the first to commit and then sees it. SQLite: writers
    are already serialised by the database lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256("|".join(_pair(a, b)).encode()).digest()[:8], "big")
        key -= 1 << 63 if key >= 1 << 63 else 0
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


#: Actions that can make or unmake a match: their pair is locked while they are written.
PAIR_ACTIONS = LIKE_ACTIONS | {"match", "block"}


def _between(a: str, b: str) -> Any:
    """SQL: an interaction from either of ``a``, ``b`` to the other."""
    return or_(
        and_(Interaction.user_id == a, Interaction.target_user_id == b),
        and_(Interaction.user_id == b, Interaction.target_user_id == a),
    )


def blocked(session: Session, a: str, b: str) -> bool:
    """Whether either of ``a`` and ``b`` has ever blocked the other: no match, ever."""
    found = select(Interaction.id).where(Interaction.action == "block", _between(a, b))
    return session.scalar(found.limit(1)) is not None


def dissolve_match(session: Session, a: str, b: str) -> bool:
    """A block ends a match already made: the match row and its match events go."""
    user_a, user_b = _pair(a, b)
    gone = session.execute(
        delete(Match).where(Match.user_a == user_a, Match.user_b == user_b).returning(Match.id)
    ).first()
    session.execute(delete(Interaction).where(Interaction.action == "match", _between(a, b)))
    return gone is not None


def maybe_create_match(
    session: Session, actor: str, target: str, now: datetime, locked: bool = False
) -> tuple[str, str] | None:
    """After ``actor`` liked ``target``: if ``target`` liked ``actor`` too, and neither
    blocked the other, create the match."""
    if not locked:
        _lock_pair(session, actor, target)
    liked_back = session.scalar(
        select(Interaction.id)
        .where(
            Interaction.user_id == target,
            Interaction.target_user_id == actor,
            Interaction.action.in_(sorted(LIKE_ACTIONS)),
        )
        .limit(1)
    )
    if liked_back is None:
        return None
    return _create_match(session, actor, target, now, locked=True)


def _create_match(
    session: Session, a: str, b: str, now: datetime, locked: bool = False
) -> tuple[str, str] | None:
    """Insert the match row once per pair (ON CONFLICT DO NOTHING) and its match event;
    never between two people one of whom blocked the other."""
    if not locked:
        _lock_pair(session, a, b)
    if blocked(session, a, b):
        return None
    user_a, user_b = _pair(a, b)
    stmt = (
        _insert(session, Match.__table__)
        .values(user_a=user_a, user_b=user_b, created_at=now.replace(tzinfo=None))
        .on_conflict_do_nothing(index_elements=["user_a", "user_b"])
        .returning(Match.__table__.c.id)
    )
    if session.execute(stmt).first() is None:
        return None
    event_id = f"match:{user_a}:{user_b}"
    session.execute(
        _insert(session, Interaction.__table__)
        .values(
            event_id=event_id,
            user_id=user_a,
            target_user_id=user_b,
            action="match",
            occurred_at=now.astimezone(UTC).replace(tzinfo=None),
            received_at=utcnow().replace(tzinfo=None),
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    return (user_a, user_b)


# --- bulk loading of generated or imported data -------------------------------------


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
    engine: Engine,
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

    Returns counts: ``users``, ``items``, ``interactions`` (created), ``duplicates``
    (interaction rows skipped), ``stamped`` (rows given the load time), ``matches``, and
    ``rated`` when ratings moved.
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
    stats = {"users": 0, "items": 0, "interactions": 0, "stamped": 0, "matches": 0}
    with session_scope(engine) as session:
        known_users, known_items = {r["id"] for r in users}, {r["id"] for r in items}
        _check_interactions(session, frame, actions, known_users, known_items, source)
        if len(frame):
            times = frame.get("occurred_at", pd.Series(pd.NaT, index=frame.index))
            times = pd.to_datetime(times, utc=True)
            stats["stamped"] = int(times.isna().sum())
            frame = frame.assign(occurred_at=times.fillna(pd.Timestamp(now)))
        stats["users"] = _upsert(session, User, users).created if users else 0
        stats["items"] = _upsert(session, Item, items).created if items else 0
        swipes = frame.iloc[0:0]
        if elo is not None and people:  # only new swipes move ratings (reloads are no-ops)
            swipes = frame[frame["target_user_id"].notna()]
            seen = existing_ids(session, Interaction.event_id, swipes["event_id"].tolist())
            swipes = swipes[~swipes["event_id"].isin(seen)]
        for start in range(0, len(frame), batch_size):
            part = _interaction_columns(frame.iloc[start : start + batch_size], now)
            stats["interactions"] += _bulk_insert_interactions(session, part, source)
        if people:
            stats["matches"] = sync_matches(session)
            if elo is not None and len(swipes):
                stats["rated"] = _replay_elo(session, swipes, elo)
    stats["duplicates"] = len(frame) - stats["interactions"]
    return stats


def _replay_elo(session: Session, frame: pd.DataFrame, elo: Any) -> int:
    """Desirability from a bulk swipe log, replayed in time order on top of stored ratings."""
    from matchwise.models.elo import ratings_from_swipes

    people = pd.unique(pd.concat([frame["user_id"], frame["target_user_id"].dropna()]))
    stored = {}
    for chunk in _chunks(list(people), CHUNK):
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


_BULK_COLUMNS = [c.name for c in Interaction.__table__.columns if c.name != "id"]


def _interaction_columns(part: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The bundle's rows in table column order, times as naive UTC, NaN as None.

    A row without a time gets ``now`` (the load time); ``received_at`` is ``now`` too.
    """
    out = pd.DataFrame(index=part.index)
    stamp = pd.Timestamp(now).tz_convert("UTC") if now.tzinfo else pd.Timestamp(now, tz="UTC")
    for column in _BULK_COLUMNS:
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


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's own SQLite DateTime text format, so comparisons in SQL stay right."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _refused(session: Session, exc: BaseException) -> bool:
    """Whether ``exc`` is the store refusing a row (a constraint, a value it cannot hold)."""
    dbapi = session.get_bind().dialect.loaded_dbapi
    driver_error = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    return isinstance(driver_error, dbapi.IntegrityError | dbapi.DataError)


def _insert_interaction_rows(session: Session, part: pd.DataFrame) -> int:
    """Insert rows on the driver, skipping event ids already stored; returns rows written.

    PostgreSQL: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT (event_id)
    DO NOTHING. SQLite: executemany of INSERT … ON CONFLICT (event_id) DO NOTHING. Only
    duplicate event ids are skipped: a NOT NULL, CHECK or foreign key failure raises (SQLite's
    INSERT OR IGNORE would skip those rows silently too).
    """
    columns = ", ".join(_BULK_COLUMNS)
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None  # a live connection inside the session's transaction
    if connection.dialect.name == "postgresql":
        session.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS bulk_interactions "
                "(LIKE interactions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        )
        copy_sql = f"COPY bulk_interactions ({columns}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in part.itertuples(index=False, name=None):
                copy.write_row(row)
        result = session.execute(
            text(
                f"INSERT INTO interactions ({columns}) SELECT {columns} FROM bulk_interactions "
                "ON CONFLICT (event_id) DO NOTHING"
            )
        )
        session.execute(text("DELETE FROM bulk_interactions"))
        return int(getattr(result, "rowcount", 0) or 0)
    rows = [
        tuple(_sqlite_time(v) if isinstance(v, pd.Timestamp | datetime) else v for v in row)
        for row in part.itertuples(index=False, name=None)
    ]
    before = raw.total_changes
    marks = ", ".join("?" for _ in _BULK_COLUMNS)
    raw.executemany(
        f"INSERT INTO interactions ({columns}) VALUES ({marks}) ON CONFLICT (event_id) DO NOTHING",
        rows,
    )
    return int(raw.total_changes - before)


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


def sync_matches(session: Session) -> int:
    """Create the match rows implied by mutual likes already stored (bulk loads).

    Set-based and idempotent: pairs that already have a match are skipped, and so are
    pairs where either blocked the other.
    """
    a, b, c = aliased(Interaction), aliased(Interaction), aliased(Interaction)
    likes = sorted(LIKE_ACTIONS)
    later = case((a.occurred_at > b.occurred_at, a.occurred_at), else_=b.occurred_at)
    block = select(c.id).where(
        c.action == "block",
        or_(
            and_(c.user_id == a.user_id, c.target_user_id == a.target_user_id),
            and_(c.user_id == a.target_user_id, c.target_user_id == a.user_id),
        ),
    )
    pairs = (
        select(a.user_id, a.target_user_id, func.max(later))
        .join(b, and_(b.user_id == a.target_user_id, b.target_user_id == a.user_id))
        .where(
            a.action.in_(likes), b.action.in_(likes), a.user_id < a.target_user_id, ~block.exists()
        )
        .group_by(a.user_id, a.target_user_id)
    )
    stmt = (
        _insert(session, Match.__table__)
        .from_select(["user_a", "user_b", "created_at"], pairs)
        .on_conflict_do_nothing(index_elements=["user_a", "user_b"])
        .returning(Match.__table__.c.id)
    )
    return len(session.execute(stmt).all())


# --- single interactions (API POST /v1/interactions, CLI interact) -------------------


def record_interaction(
    session: Session, interaction: InteractionIn, settings: Settings
) -> InteractionOut:
    """Record one interaction; a mutual like creates the match."""
    result = ingest_events(
        session,
        [interaction],
        settings.action_table,
        sample_rate=settings.analytics_sample_rate,
        elo=settings.elo,
    )
    refreshed = False
    if result.written:
        refreshed = maybe_enqueue_refresh(
            session, settings, interaction.user_id, interaction.action
        )
    return InteractionOut(
        written=result.written,
        duplicates=result.duplicates,
        match_created=bool(result.matches_created),
        refresh_enqueued=refreshed,
    )


def resolve_target(session: Session, target_id: str, prefer: str = "item") -> str:
    """Whether ``target_id`` names a user or an item ("user"/"item"); NotFound if neither."""
    is_user = session.get(User, target_id) is not None
    is_item = session.get(Item, target_id) is not None
    if is_user and is_item:
        return prefer
    if is_user:
        return "user"
    if is_item:
        return "item"
    raise NotFound(f"unknown target {target_id!r}: no user or item has that id")
