"""Gorse's data model over matchwise's store, for the ``/api`` routes.

A Gorse user or item is a matchwise user or item: the Gorse fields matchwise has no
column for (labels, comments, categories, an item's timestamp) live under the
``gorse`` key of ``attributes``; an item's first category is its ``category``, its
categories (and labels, when they are a list of words) its ``tags``; a hidden item is
an inactive one, which matchwise never recommends. A Gorse feedback is an interaction
whose action is the type's matchwise action (``gorse_feedback_actions``; a type not
listed is an action of its own name) and whose event id names the type, so that one
row holds one (type, user, item) as in Gorse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from dateutil import parser as dateparser
from pydantic import ValidationError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from matchwise.actions import ActionRule
from matchwise.api.gorse.models import (
    GorseFeedback,
    GorseItem,
    GorseItemPatch,
    GorseUser,
    GorseUserPatch,
)
from matchwise.db.notify import lists_changed
from matchwise.db.online import note_visibility
from matchwise.db.queries import existing_ids
from matchwise.db.tables import Interaction, Item, User, utcnow
from matchwise.errors import InvalidInput, NotFound
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import check_batch_size, upsert_rows
from matchwise.schemas import InteractionIn, ItemIn, UserIn
from matchwise.settings import Settings

KEY = "gorse"
EVENT_PREFIX = "gorse:"
#: Gorse's answer for a time it does not know: Go's zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"


# --- wire helpers ----------------------------------------------------------------------


def rfc3339(moment: datetime | None) -> str:
    """UTC, ``Z``, no fractional seconds: what Gorse's clients parse."""
    if moment is None:
        return ZERO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, where: str) -> datetime | None:
    """Any date Gorse's ``dateparse.ParseAny`` takes that dateutil reads; naive is UTC."""
    if not text:
        return None
    try:
        moment = dateparser.parse(text)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{where}: cannot parse {text!r} as a time: {exc}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode()


def decode_cursor(cursor: str) -> str:
    if not cursor:
        return ""
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"invalid cursor {cursor!r}") from None


def _problem(exc: ValidationError, where: str) -> InvalidInput:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    return InvalidInput(f"{where}{'.' + field if field else ''}: {err.get('msg', 'invalid')}")


def _words(labels: Any) -> list[str]:
    """Labels that are a list of short words double as tags (matchwise's interests)."""
    if isinstance(labels, list) and all(isinstance(v, str) and 0 < len(v) <= 64 for v in labels):
        return list(labels)
    return []


def _dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v and len(v) <= 64))[:200]


def _gorse(attributes: dict[str, Any] | None) -> dict[str, Any]:
    found = (attributes or {}).get(KEY)
    return found if isinstance(found, dict) else {}


# --- users -----------------------------------------------------------------------------


def user_json(user: User) -> dict[str, Any]:
    g = _gorse(user.attributes)
    return {"UserId": user.id, "Labels": g.get("labels"), "Comment": g.get("comment", "")}


def put_users(session: Session, settings: Settings, users: Sequence[GorseUser]) -> int:
    """``POST /api/user(s)``: a batch of at most ``max_batch_size``."""
    check_batch_size(len(users), settings.max_batch_size, "users")
    return write_users(session, users)


def write_users(session: Session, users: Sequence[GorseUser]) -> int:
    """Insert or replace the Gorse fields of users (matchwise's own fields stay)."""
    known = {
        u.id: u for u in session.scalars(select(User).where(User.id.in_([u.UserId for u in users])))
    }
    rows: dict[str, dict[str, Any]] = {}
    for i, user in enumerate(users):
        old = known.get(user.UserId)
        attributes = dict(old.attributes or {}) if old is not None else {}
        attributes[KEY] = {"labels": user.Labels, "comment": user.Comment}
        old_tags = list(old.tags or []) if old is not None else []
        tags = _dedupe([*old_tags, *_words(user.Labels)])
        try:
            checked = UserIn(id=user.UserId, attributes=attributes, tags=tags)
        except ValidationError as exc:
            raise _problem(exc, f"users[{i}]") from None
        rows[user.UserId] = {
            "id": checked.id,
            "attributes": checked.attributes,
            "tags": checked.tags,
        }
    upsert_rows(session, User, list(rows.values()))
    return len(users)


def patch_user(session: Session, user_id: str, patch: GorseUserPatch) -> int:
    user = _user(session, user_id)
    g = dict(_gorse(user.attributes))
    if patch.Labels is not None:
        g["labels"] = patch.Labels
    if patch.Comment is not None:
        g["comment"] = patch.Comment
    write_users(
        session, [GorseUser(UserId=user_id, Labels=g.get("labels"), Comment=g.get("comment", ""))]
    )
    return 1


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"{user_id}: user not found")
    return user


def get_user(session: Session, user_id: str) -> dict[str, Any]:
    return user_json(_user(session, user_id))


def list_users(session: Session, cursor: str, n: int) -> tuple[str, list[dict[str, Any]]]:
    """A page of users in id order; the cursor is where the next page starts after."""
    after = decode_cursor(cursor)
    stmt = select(User).where(User.id > after).order_by(User.id).limit(n)
    users = list(session.scalars(stmt))
    return (encode_cursor(users[-1].id) if len(users) == n else ""), [user_json(u) for u in users]


# --- items -----------------------------------------------------------------------------


def item_json(item: Item) -> dict[str, Any]:
    g = _gorse(item.attributes)
    categories = g.get("categories")
    if categories is None:
        categories = [item.category] if item.category else []
    return {
        "ItemId": item.id,
        "IsHidden": not item.active,
        "Categories": categories,
        "Timestamp": g.get("timestamp", ZERO_TIME),
        "Labels": g.get("labels"),
        "Comment": g.get("comment", item.title or ""),
    }


def put_items(session: Session, settings: Settings, items: Sequence[GorseItem]) -> int:
    """``POST /api/item(s)``: a batch of at most ``max_batch_size``."""
    check_batch_size(len(items), settings.max_batch_size, "items")
    return write_items(session, items)


def write_items(session: Session, items: Sequence[GorseItem]) -> int:
    """Insert or replace items' Gorse fields (matchwise's own fields stay)."""
    ids = [i.ItemId for i in items]
    known = {i.id: i for i in session.scalars(select(Item).where(Item.id.in_(ids)))}
    rows: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items):
        when = parse_time(item.Timestamp, f"items[{n}].Timestamp")
        categories = _dedupe(item.Categories or [])
        old = known.get(item.ItemId)
        attributes = dict(old.attributes or {}) if old is not None else {}
        attributes[KEY] = {
            "labels": item.Labels,
            "comment": item.Comment,
            "categories": categories,
            **({"timestamp": rfc3339(when)} if when is not None else {}),
        }
        try:
            checked = ItemIn(
                id=item.ItemId,
                title=item.Comment[:500] or None,
                category=categories[0][:120] if categories else None,
                tags=_dedupe([*categories, *_words(item.Labels)]),
                attributes=attributes,
                active=not item.IsHidden,
            )
        except ValidationError as exc:
            raise _problem(exc, f"items[{n}]") from None
        rows[item.ItemId] = {
            "id": checked.id,
            "title": checked.title,
            "category": checked.category,
            "tags": checked.tags,
            "attributes": checked.attributes,
            "active": checked.active,
        }
    upsert_rows(session, Item, list(rows.values()))
    return len(items)


def _item(session: Session, item_id: str) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise NotFound(f"{item_id}: item not found")
    return item


def get_item(session: Session, item_id: str) -> dict[str, Any]:
    return item_json(_item(session, item_id))


def _replace(session: Session, current: dict[str, Any]) -> None:
    write_items(session, [GorseItem(**current)])


def patch_item(session: Session, item_id: str, patch: GorseItemPatch) -> int:
    current = item_json(_item(session, item_id))
    for field in ("IsHidden", "Categories", "Timestamp", "Labels", "Comment"):
        value = getattr(patch, field)
        if value is not None:
            current[field] = value
    if current["Timestamp"] == ZERO_TIME:
        current["Timestamp"] = ""
    _replace(session, current)
    return 1


def set_category(session: Session, item_id: str, category: str, present: bool) -> int:
    current = item_json(_item(session, item_id))
    categories = [c for c in current["Categories"] if c != category]
    current["Categories"] = [*categories, category] if present else categories
    if current["Timestamp"] == ZERO_TIME:
        current["Timestamp"] = ""
    _replace(session, current)
    return 1


def delete_item(session: Session, item_id: str) -> int:
    """The item and its feedback go; every list drops it."""
    _item(session, item_id)
    session.execute(delete(Interaction).where(Interaction.item_id == item_id))
    session.execute(delete(Item).where(Item.id == item_id))
    note_visibility(session, "item", [item_id])
    return 1


def list_items(session: Session, cursor: str, n: int) -> tuple[str, list[dict[str, Any]]]:
    after = decode_cursor(cursor)
    stmt = select(Item).where(Item.id > after).order_by(Item.id).limit(n)
    items = list(session.scalars(stmt))
    return (encode_cursor(items[-1].id) if len(items) == n else ""), [item_json(i) for i in items]


def visible_items(session: Session, ids: Sequence[str], categories: Sequence[str]) -> set[str]:
    """Of ``ids``, the shown (not hidden) items in any of ``categories`` (any when empty)."""
    wanted = set(categories)
    keep: set[str] = set()
    for start in range(0, len(ids), 1000):
        for item in session.scalars(
            select(Item).where(Item.id.in_(ids[start : start + 1000]), Item.active.is_(True))
        ):
            if not wanted or wanted & set(item_json(item)["Categories"]):
                keep.add(item.id)
    return keep


def latest(
    session: Session, n: int, offset: int, categories: Sequence[str], user_id: str = ""
) -> list[dict[str, Any]]:
    """Shown items, newest Gorse timestamp first (the time they were stored without one)."""
    seen = fed_back(session, user_id) if user_id else set()
    rows = []
    for item in session.scalars(select(Item).where(Item.active.is_(True))):
        doc = item_json(item)
        if item.id in seen or (categories and not set(categories) & set(doc["Categories"])):
            continue
        stamp = doc["Timestamp"] if doc["Timestamp"] != ZERO_TIME else rfc3339(item.created_at)
        rows.append((parse_time(stamp, "Timestamp") or item.created_at, item.id))
    rows.sort(key=lambda r: (-r[0].timestamp(), r[1]))
    return [{"Id": i, "Score": float(t.timestamp())} for t, i in rows[offset : offset + n]]


def popular(
    session: Session,
    settings: Settings,
    n: int,
    offset: int,
    categories: Sequence[str],
    user_id: str = "",
) -> list[dict[str, Any]]:
    """Shown items by how many positive events they have (the action table's positives)."""
    positive = [a for a, rule in settings.action_table.items() if rule.positive]
    counts = session.execute(
        select(Interaction.item_id, func.count())
        .where(Interaction.item_id.is_not(None), Interaction.action.in_(positive))
        .group_by(Interaction.item_id)
    ).all()
    ranked = sorted(((int(c), str(i)) for i, c in counts), key=lambda r: (-r[0], r[1]))
    seen = fed_back(session, user_id) if user_id else set()
    ids = [i for _, i in ranked if i not in seen]
    keep = visible_items(session, ids, categories)
    score = {i: c for c, i in ranked}
    kept = [i for i in ids if i in keep][offset : offset + n]
    return [{"Id": i, "Score": float(score[i])} for i in kept]


# --- feedback --------------------------------------------------------------------------


def event_id(feedback_type: str, user_id: str, item_id: str) -> str:
    """One row per (type, user, item): the type in clear (it is read back), the pair hashed."""
    pair = hashlib.sha256(f"{user_id}\x00{item_id}".encode()).hexdigest()[:40]
    return f"{EVENT_PREFIX}{feedback_type}:{pair}"


def feedback_type_of(row: Interaction) -> str:
    if row.event_id.startswith(EVENT_PREFIX):
        return row.event_id[len(EVENT_PREFIX) :].rsplit(":", 1)[0]
    return row.action  # an event sent to /v1: its action is its type


def action_of(settings: Settings, feedback_type: str) -> str:
    return settings.gorse_feedback_actions.get(feedback_type, feedback_type.lower())


def feedback_json(row: Interaction) -> dict[str, Any]:
    return {
        "FeedbackType": feedback_type_of(row),
        "UserId": row.user_id,
        "ItemId": row.item_id,
        "Value": float(row.value or 0.0),
        "Timestamp": rfc3339(row.occurred_at),
        "Comment": "",
    }


def put_feedback(
    session: Session, settings: Settings, feedback: Sequence[GorseFeedback], overwrite: bool
) -> int:
    """Add (``overwrite`` False: the value adds to a stored one, the earlier time stays,
    as Gorse's POST) or replace (PUT) feedback. Unknown users and items are created, as
    Gorse does by default."""
    check_batch_size(len(feedback), settings.max_batch_size, "feedback")
    now = utcnow()
    merged: dict[str, tuple[GorseFeedback, datetime]] = {}
    for i, f in enumerate(feedback):
        when = parse_time(f.Timestamp, f"feedback[{i}].Timestamp") or now
        key = event_id(f.FeedbackType, f.UserId, f.ItemId)
        if key in merged and not overwrite:  # Gorse keeps one row per key in a batch
            continue
        merged[key] = (f, when)
    _create_missing(session, merged.values())
    stored = {
        r.event_id: r
        for r in session.scalars(select(Interaction).where(Interaction.event_id.in_(list(merged))))
    }
    fresh: list[InteractionIn] = []
    table: dict[str, ActionRule] = dict(settings.action_table)
    for key, (f, when) in merged.items():
        row = stored.get(key)
        if row is not None:
            value = f.Value if overwrite else (row.value or 0.0) + f.Value
            moment = when if overwrite else min(row.occurred_at, when)
            session.execute(
                update(Interaction)
                .where(Interaction.id == row.id)
                .values(value=value, occurred_at=moment)
            )
            continue
        action = action_of(settings, f.FeedbackType)
        table.setdefault(action, ActionRule(label=None, weight=0.0))  # kept, not learnt from
        try:
            fresh.append(
                InteractionIn(
                    event_id=key,
                    user_id=f.UserId,
                    item_id=f.ItemId,
                    action=action,
                    value=f.Value,
                    timestamp=when,
                )
            )
        except ValidationError as exc:
            raise _problem(exc, "feedback") from None
    if fresh:
        ingest_events(session, fresh, table, now=now, elo=settings.elo)
    return len(feedback)


def _create_missing(session: Session, feedback: Iterable[tuple[GorseFeedback, datetime]]) -> None:
    pairs = list(feedback)
    users = sorted({f.UserId for f, _ in pairs})
    items = sorted({f.ItemId for f, _ in pairs})
    new_users = set(users) - existing_ids(session, User.id, users)
    new_items = set(items) - existing_ids(session, Item.id, items)
    if new_users:
        write_users(session, [GorseUser(UserId=u) for u in sorted(new_users)])
    if new_items:
        write_items(session, [GorseItem(ItemId=i) for i in sorted(new_items)])


def _item_feedback(feedback_type: str = "") -> Any:
    """Feedback rows: item events, impressions left out; of one type when given (a row
    from ``/api`` by the type in its event id, one from ``/v1`` by its action)."""
    stmt = select(Interaction).where(
        Interaction.item_id.is_not(None), Interaction.action != "impression"
    )
    if feedback_type:
        escaped = re.sub(r"([\\%_])", r"\\\1", feedback_type)
        stmt = stmt.where(
            or_(
                Interaction.event_id.like(f"{EVENT_PREFIX}{escaped}:%", escape="\\"),
                and_(
                    Interaction.event_id.not_like(f"{EVENT_PREFIX}%"),
                    Interaction.action == feedback_type,
                ),
            )
        )
    return stmt


def _exact(rows: Iterable[Interaction], feedback_type: str) -> list[dict[str, Any]]:
    """The JSON of ``rows``; of exactly ``feedback_type`` when given (a type holding a
    colon may share its event-id prefix with another)."""
    found = [feedback_json(r) for r in rows]
    return [f for f in found if not feedback_type or f["FeedbackType"] == feedback_type]


def list_feedback(
    session: Session, cursor: str, n: int, feedback_type: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """Feedback up to now (of one type when given), in storage order, a page at a time."""
    after = decode_cursor(cursor)
    try:
        start = int(after) if after else 0
    except ValueError:
        raise InvalidInput(f"invalid cursor {cursor!r}") from None
    stmt = (
        _item_feedback(feedback_type)
        .where(Interaction.id > start, Interaction.occurred_at <= utcnow())
        .order_by(Interaction.id)
        .limit(n)
    )
    rows = list(session.scalars(stmt))
    return (encode_cursor(rows[-1].id) if len(rows) == n else ""), _exact(rows, feedback_type)


def user_feedback(session: Session, user_id: str, feedback_type: str = "") -> list[dict[str, Any]]:
    """A user's feedback up to now (a write-back delayed into the future not yet)."""
    stmt = _item_feedback(feedback_type).where(
        Interaction.user_id == user_id, Interaction.occurred_at <= utcnow()
    )
    return _exact(session.scalars(stmt.order_by(Interaction.id)), feedback_type)


def item_feedback(session: Session, item_id: str, feedback_type: str = "") -> list[dict[str, Any]]:
    stmt = _item_feedback(feedback_type).where(
        Interaction.item_id == item_id, Interaction.occurred_at <= utcnow()
    )
    return _exact(session.scalars(stmt.order_by(Interaction.id)), feedback_type)


def user_item_feedback(
    session: Session, user_id: str, item_id: str, feedback_type: str = ""
) -> list[dict[str, Any]]:
    stmt = _item_feedback(feedback_type).where(
        Interaction.user_id == user_id, Interaction.item_id == item_id
    )
    return _exact(session.scalars(stmt.order_by(Interaction.id)), feedback_type)


def typed_user_item_feedback(
    session: Session, feedback_type: str, user_id: str, item_id: str
) -> dict[str, Any]:
    found = user_item_feedback(session, user_id, item_id, feedback_type)
    if not found:
        raise NotFound(f"{feedback_type}/{user_id}/{item_id}: feedback not found")
    return found[0]


def delete_user_item_feedback(
    session: Session, user_id: str, item_id: str, feedback_type: str = ""
) -> int:
    """Every type's feedback of the user on the item, or one type's."""
    stmt = _item_feedback(feedback_type).where(
        Interaction.user_id == user_id, Interaction.item_id == item_id
    )
    ids = [r.id for r in session.scalars(stmt)
           if not feedback_type or feedback_type_of(r) == feedback_type]  # fmt: skip
    if ids:
        session.execute(delete(Interaction).where(Interaction.id.in_(ids)))
        lists_changed(session, users=[user_id])  # the item may be shown to them again
    return len(ids)


def fed_back(session: Session, user_id: str) -> set[str]:
    """Items the user gave any feedback on (Gorse never recommends those again)."""
    stmt = select(Interaction.item_id).where(
        Interaction.user_id == user_id,
        Interaction.item_id.is_not(None),
        Interaction.action != "impression",
        Interaction.occurred_at <= utcnow(),  # a delayed write-back counts once it is due
    )
    return {str(i) for i in session.scalars(stmt)}
