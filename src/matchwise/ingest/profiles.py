"""Profiles and items: validated batches upserted by id in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from matchwise.db.online import note_visibility
from matchwise.db.queries import chunked, dialect_insert, existing_ids
from matchwise.db.tables import Item, User, utcnow
from matchwise.errors import BatchTooLarge, InvalidInput
from matchwise.jobs.queue import maybe_enqueue_safety_scan
from matchwise.schemas import (
    ItemIn,
    UpsertResult,
    UserIn,
    age_on,
)
from matchwise.settings import Settings

log = logging.getLogger(__name__)

USERS = cast(Table, User.__table__)


def upsert_rows(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> UpsertResult:
    if not rows:
        return UpsertResult(created=0, updated=0)
    table = model.__table__
    present = existing_ids(session, table.c.id, [r["id"] for r in rows])
    now = utcnow()
    for row in rows:
        row.setdefault("updated_at", now)
    columns = [c for c in rows[0] if c != "id"]
    for chunk in chunked(rows, 2000):
        stmt = dialect_insert(session, table)
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
    return upsert_rows(session, User, rows)


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


def check_batch_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise BatchTooLarge(
            f"{what}: {size:,} in one batch, over max_batch_size ({limit:,}); split it"
        )


def upsert_items(session: Session, items: Sequence[ItemIn]) -> UpsertResult:
    """Insert or update items by id."""
    _unique_ids([i.id for i in items], "items")
    return upsert_rows(session, Item, [i.model_dump() for i in items])


def age_from_birth_date(born: Any, today: datetime | None = None) -> int:
    return age_on(born, (today or datetime.now(UTC)).date())
