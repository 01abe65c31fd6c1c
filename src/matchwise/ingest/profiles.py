"""Profiles and items: validated batches upserted by id in one transaction; a written
profile's bio vector is queued for the worker (:func:`embed_profiles`), never computed
inside a request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from matchwise.db.notify import lists_changed, notify
from matchwise.db.online import note_visibility
from matchwise.db.queries import chunked, dialect_insert, existing_ids, hidden_candidates
from matchwise.db.tables import Item, ProfileEmbedding, User, utcnow
from matchwise.errors import BatchTooLarge, InvalidInput
from matchwise.features.text import TextEmbedder, text_key, vector_bytes
from matchwise.jobs.queue import enqueue, maybe_enqueue_safety_scan
from matchwise.runtime import Runtime
from matchwise.schemas import (
    ItemIn,
    UpsertResult,
    UserIn,
    age_on,
)
from matchwise.settings import Settings

log = logging.getLogger(__name__)

USERS = cast(Table, User.__table__)
#: The worker's job that computes bio vectors, and how many profiles one job embeds.
EMBED_JOB = "embed_bios"
EMBED_CHUNK = 1000


def upsert_rows(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> UpsertResult:
    if not rows:
        return UpsertResult(created=0, updated=0)
    table = model.__table__
    present = existing_ids(session, table.c.id, [r["id"] for r in rows])
    kind: Literal["user", "item"] = "user" if model is User else "item"
    was_hidden = hidden_candidates(session, sorted(present), kind) if present else set()
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
    note_visibility(session, kind, [r["id"] for r in rows])
    if was_hidden:  # shown again, maybe: copies of lists made meanwhile lack them
        lists_changed(session, everything=True)
    named = [r["id"] for r in rows] if kind == "user" else []  # profiles are patched in
    notify(session, kind, ids=named)  # every server reads them at commit
    if model is User:
        # a new bio, or a changed or removed one (whose stored vector must go)
        written = [r["id"] for r in rows if "bio" in r and (r["bio"] or r["id"] in present)]
        queue_bio_embeddings(session, written)
    return UpsertResult(created=created, updated=len(rows) - created)


def queue_bio_embeddings(session: Session, user_ids: Sequence[str]) -> int:
    """Queue the bio vectors of written profiles for the worker, one job per
    :data:`EMBED_CHUNK` (every path that writes profiles comes through
    :func:`upsert_rows`: the API, imports, generated data). Until the job has run, such a
    profile has no vector: serving scores it without the bio signal, never embeds it.
    Returns the number of jobs queued."""
    ids = sorted(set(user_ids))
    for chunk in chunked(ids, EMBED_CHUNK):
        enqueue(session, EMBED_JOB, {"user_ids": list(chunk)})
    return -(-len(ids) // EMBED_CHUNK)


def embed_profiles(
    runtime: Runtime, user_ids: Sequence[str] | None = None, embedder: TextEmbedder | None = None
) -> dict[str, int]:
    """The worker's side: store the bio vector of each of ``user_ids`` (every profile whose
    vector is missing or stale when None) with the bio's content hash, in batches of
    :data:`EMBED_CHUNK`; a profile whose stored hash matches its bio is skipped, and the
    vector of a bio that was removed is deleted. Vectors are computed outside any
    transaction and written only while the bio is still the one embedded."""
    embedder = embedder or TextEmbedder(None)
    with runtime.read_session() as session:
        found = _bios_and_hashes(session, user_ids)
    todo = [(uid, bio, text_key(bio)) for uid, bio, stored in found
            if bio and text_key(bio) != stored]  # fmt: skip
    cleared = [uid for uid, bio, stored in found if not bio and stored is not None]
    for chunk in chunked(todo, EMBED_CHUNK):
        vectors = embedder.embed([bio for _, bio, _ in chunk])
        runtime.transaction(_store_vectors, list(chunk), vectors)
    if cleared:
        runtime.transaction(_clear_vectors, cleared)
    return {"embedded": len(todo), "unchanged": len(found) - len(todo) - len(cleared),
            "cleared": len(cleared)}  # fmt: skip


def _bios_and_hashes(
    session: Session, user_ids: Sequence[str] | None
) -> list[tuple[str, str | None, str | None]]:
    """``(id, bio stripped or None, stored content hash or None)`` per profile."""
    stmt = select(User.id, User.bio, ProfileEmbedding.content_hash).outerjoin(
        ProfileEmbedding, ProfileEmbedding.user_id == User.id
    )
    if user_ids is None:
        rows = list(session.execute(stmt).all())
    else:
        rows = [row for chunk in chunked(sorted(set(user_ids)), 2000)
                for row in session.execute(stmt.where(User.id.in_(list(chunk)))).all()]  # fmt: skip
    return [(uid, (bio or "").strip() or None, stored) for uid, bio, stored in rows]


def _store_vectors(session: Session, chunk: list[tuple[str, str, str]], vectors: Any) -> None:
    """Upsert the vectors of the profiles whose bio is still the one embedded (a profile
    changed or erased meanwhile is left to the job its own write queued)."""
    ids = [uid for uid, _, _ in chunk]
    current = dict(session.execute(select(User.id, User.bio).where(User.id.in_(ids))).all())
    now = utcnow()
    rows = [{"user_id": uid, "content_hash": key, "vector": vector_bytes(vec), "updated_at": now}
            for (uid, bio, key), vec in zip(chunk, vectors, strict=True)
            if (current.get(uid) or "").strip() == bio]  # fmt: skip
    if rows:
        stmt = dialect_insert(session, ProfileEmbedding.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={c: stmt.excluded[c] for c in ("content_hash", "vector", "updated_at")},
        )
        session.execute(stmt, rows)
        notify(session, "user", ids=[str(r["user_id"]) for r in rows])  # servers read them again


def _clear_vectors(session: Session, user_ids: list[str]) -> None:
    for chunk in chunked(user_ids, 2000):
        session.execute(delete(ProfileEmbedding).where(ProfileEmbedding.user_id.in_(list(chunk))))
    notify(session, "user", ids=user_ids)


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
