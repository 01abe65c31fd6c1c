"""Events: validate, de-duplicate by event id, write one transaction per batch, move
Elo, make (and unmake) matches.

A batch is all or nothing: one bad event rejects it whole with a message naming the
event and the field, and nothing of it is written. A retried batch is recognised by
its event ids and never double counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast, get_args

import numpy as np
from sqlalchemy import Table, and_, bindparam, delete, or_, select, text
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS, HIDES_ACTOR_FROM_TARGET, LIKE_ACTIONS, ActionRule
from matchwise.db.matching import held
from matchwise.db.online import note_seen
from matchwise.db.queries import (
    INTERACTION_COLUMNS,
    dialect_insert,
    existing_ids,
    insert_interactions,
)
from matchwise.db.tables import Interaction, Item, Match, User, utcnow
from matchwise.errors import InvalidInput, NotFound
from matchwise.ingest.profiles import check_batch_size
from matchwise.jobs.queue import maybe_enqueue_refresh
from matchwise.models.elo import NEGATIVE_ACTIONS, POSITIVE_ACTIONS, update
from matchwise.schemas import (
    CandidateKind,
    Event,
    ImpressionEvent,
    IngestResult,
    InteractionIn,
    InteractionOut,
    MatchEvent,
    SwipeBatchEvent,
)
from matchwise.settings import Settings

log = logging.getLogger(__name__)

USERS = cast(Table, User.__table__)


def store_events(session: Session, settings: Settings, events: Sequence[Event]) -> IngestResult:
    """``POST /v1/events``: the batch with the configured actions, sampling and Elo."""
    check_batch_size(len(events), settings.max_batch_size, "events")
    return ingest_events(session, events, settings.action_table,
                         sample_rate=settings.analytics_sample_rate, elo=settings.elo)  # fmt: skip


def import_events(
    session: Session, settings: Settings, events: Sequence[Event], where: Callable[[int], str]
) -> IngestResult:
    """``matchwise load events``: a file of events, taken exactly as ``POST /v1/events``
    takes a batch (one transaction, no size cap); ``where(i)`` names event ``i`` in the
    file for error messages (``events.jsonl: line 4``)."""
    return ingest_events(session, events, settings.action_table,
                         sample_rate=settings.analytics_sample_rate, elo=settings.elo,
                         where=where)  # fmt: skip


def _position(index: int) -> str:
    return f"events[{index}]"


@dataclass
class _Row:
    """One interaction row to write, with where it came from for error messages, and
    where the sender wrote those of its columns that the event names otherwise (a
    swipe's ``target_user_id`` is ``events[0].swipes[2].candidate_id``)."""

    where: str
    values: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)

    def at(self, column: str) -> str:
        return self.names.get(column, f"{self.where}.{column}")


def _event_id(event_id: str | None, payload: dict[str, Any]) -> str:
    """The caller's id, or a content hash when the event carries a timestamp (so a retry
    of the same event is recognised); events with neither get a random id."""
    if event_id:
        return event_id
    if payload.get("occurred_at") is not None:
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return "h" + hashlib.sha256(blob).hexdigest()[:40]
    return "r" + uuid.uuid4().hex


def _expand(
    index: int,
    event: Event,
    candidate_kind: str | None = None,
    name: Callable[[int], str] = _position,
) -> list[_Row]:
    """Turn one wire event into interaction rows (impressions and swipe batches fan out).

    ``candidate_kind`` is what an impression's candidates are when it did not say;
    ``name`` names the event in error messages.
    """
    where = name(index)
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
        values |= {"experiment": event.experiment, "arm": event.arm}  # not in the id's hash
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
        kind = event.candidate_kind or candidate_kind
        target = "target_user_id" if kind == "user" else "item_id"
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
                    "experiment": event.experiment,
                    "arm": event.arm,
                    "occurred_at": event.timestamp,
                },
                {"user_id": f"{where}.user_id", target: f"{where}.candidate_ids[{j}]"},
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
                {
                    "user_id": f"{where}.user_id",
                    "target_user_id": f"{where}.swipes[{j}].candidate_id",
                },  # fmt: skip
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
        return [_Row(where, values, {"target_user_id": f"{where}.matched_user_id"})]
    raise InvalidInput(f"{where}: unsupported event type {type(event).__name__}")


def _candidate_kinds(
    session: Session, events: Sequence[Event], name: Callable[[int], str] = _position
) -> dict[int, str]:
    """What the candidates of impressions sent without ``candidate_kind`` are, by event
    position: all known users and no item, or all known items and no user. An id that is
    neither or both (or a mix of users and items) is refused, saying to add the kind."""
    pending = {i: e for i, e in enumerate(events)
               if isinstance(e, ImpressionEvent) and e.candidate_kind is None}  # fmt: skip
    if not pending:
        return {}
    ids = sorted({c for e in pending.values() for c in e.candidate_ids})
    users, items = existing_ids(session, User.id, ids), existing_ids(session, Item.id, ids)
    allowed = " or ".join(repr(k) for k in get_args(CandidateKind))
    add = f"add candidate_kind ({allowed}) to the impression"
    kinds: dict[int, str] = {}
    for i, event in pending.items():
        found: dict[str, int] = {}
        for j, candidate in enumerate(event.candidate_ids):
            is_user, is_item = candidate in users, candidate in items
            if is_user == is_item:
                what = "both a user and an item" if is_user else "neither a known user nor item"
                raise InvalidInput(f"{name(i)}.candidate_ids[{j}]: {candidate!r} is {what}; {add}")
            found.setdefault("user" if is_user else "item", j)
        if len(found) > 1:
            raise InvalidInput(
                f"{name(i)}.candidate_ids mixes users (candidate_ids[{found['user']}]) and "
                f"items (candidate_ids[{found['item']}]); send one impression per kind and "
                f"{add}"
            )
        kinds[i] = next(iter(found))
    return kinds


def _validate_rows(session: Session, rows: list[_Row], actions: dict[str, ActionRule]) -> None:
    for row in rows:
        action = row.values["action"]
        if action not in actions:
            known = ", ".join(sorted(actions))
            raise InvalidInput(f"{row.where}.action: unknown action {action!r}; known: {known}")
        if row.values.get("user_id") == row.values.get("target_user_id"):
            raise InvalidInput(f"{row.where}: a user cannot act on themselves")
        if action == "match" and not row.values.get("target_user_id"):
            raise InvalidInput(f"{row.where}: a match is between two people: give target_user_id")
    user_refs = [r.values["user_id"] for r in rows] + [
        r.values["target_user_id"] for r in rows if r.values.get("target_user_id")
    ]
    known_users = existing_ids(session, User.id, user_refs)
    item_refs = [r.values["item_id"] for r in rows if r.values.get("item_id")]
    known_items = existing_ids(session, Item.id, item_refs)
    for row in rows:
        for column in ("user_id", "target_user_id"):
            ident = row.values.get(column)
            if ident is not None and ident not in known_users:
                raise NotFound(f"{row.at(column)}: unknown user {ident!r}")
        item = row.values.get("item_id")
        if item is not None and item not in known_items:
            raise NotFound(f"{row.at('item_id')}: unknown item {item!r}")


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
    where: Callable[[int], str] = _position,
) -> IngestResult:
    """Validate and write a batch inside the caller's transaction.

    Raises :class:`InvalidInput` / :class:`NotFound` before writing anything when any
    event is bad, so the caller's rollback leaves the store as it was. Impressions and
    dwell events are kept at ``sample_rate`` with weight ``1 / sample_rate`` so counts
    stay unbiased.
    """
    now = now or utcnow()
    kinds = _candidate_kinds(session, events, where)
    rows = [row for i, event in enumerate(events)
            for row in _expand(i, event, kinds.get(i), where)]  # fmt: skip
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
    refused = _blocked_matches(session, fresh)
    fresh = [values for values in fresh if values["event_id"] not in refused]
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
        duplicates=len(rows) - written - len(refused),
        sampled_out=sampled_out,
        matches_created=matches,
        matches_refused=len(refused),
    )


def _blocked_matches(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Event ids of reported matches between two people one of whom blocked the other
    (stored, or in this batch): not stored at all, as no mutual like between them makes
    a match either."""
    blocks = {_pair(v["user_id"], v["target_user_id"]) for v in rows
              if v["action"] == "block" and v.get("target_user_id")}  # fmt: skip
    return {
        v["event_id"]
        for v in rows
        if v["action"] == "match"
        and v.get("target_user_id")
        and (_pair(v["user_id"], v["target_user_id"]) in blocks
             or blocked(session, v["user_id"], v["target_user_id"]))
    }  # fmt: skip


def _write_interactions(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping event ids another writer stored meanwhile; returns rows written
    (PostgreSQL: COPY and one INSERT … SELECT, see :func:`insert_interactions`)."""
    if not rows:
        return 0
    now = utcnow()
    tuples = []
    for r in rows:
        values = {**r, "received_at": now}
        if values.get("sample_weight") is None:
            values["sample_weight"] = 1.0
        tuples.append(tuple(values.get(c) for c in INTERACTION_COLUMNS))
    return insert_interactions(session, tuples)


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
    never between two people one of whom blocked the other, and not while moderation
    holds or removed either (an approval makes it then: :func:`sync_matches`)."""
    if not locked:
        _lock_pair(session, a, b)
    if blocked(session, a, b) or held(session, a, b):
        return None
    user_a, user_b = _pair(a, b)
    stmt = (
        dialect_insert(session, Match.__table__)
        .values(user_a=user_a, user_b=user_b, created_at=now.replace(tzinfo=None))
        .on_conflict_do_nothing(index_elements=["user_a", "user_b"])
        .returning(Match.__table__.c.id)
    )
    if session.execute(stmt).first() is None:
        return None
    event_id = f"match:{user_a}:{user_b}"
    session.execute(
        dialect_insert(session, Interaction.__table__)
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
