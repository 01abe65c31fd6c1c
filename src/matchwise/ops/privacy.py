"""Privacy guardrails (seed 001): keyed hashes of user ids, retention with aggregates,
old model versions pruned, and erasure of a person.

Analytics exports and training snapshots carry HMAC-SHA256 hashes of user ids under
``settings.hash_secret``: stable within one deployment (so joins work), useless to
anyone without the secret, and never the raw id, email or name. Unless the operator
sets one, the secret is generated at the store's first run (see ``runtime.hash_secret``).

Erasure (:func:`erase_user`) deletes the person's rows (their events first folded into
the daily counts, without the id), rewrites every other row that names them (audit log,
jobs, outbox, moderation notes and labels, other people's cached lists), clears them
from Redis and their bio from the embedding cache, and leaves one audit entry naming
only a keyed hash (not them as its actor either, when they erased themself). Trained
models forget them at the next retrain;
versions older than ``model_retention_days`` are deleted by the retention job.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import redis
from sqlalchemy import String, Text, and_, cast, delete, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from matchwise.db.audit import audit
from matchwise.db.notify import lists_changed, notify
from matchwise.db.online import PREFIX, OnlineCache, hidden_key, list_key, seen_key
from matchwise.db.queries import dialect_insert as _insert
from matchwise.db.tables import (
    AuditLog,
    Base,
    DailyAggregate,
    Experiment,
    ExperimentTeam,
    Interaction,
    Item,
    Job,
    Match,
    ModerationFlag,
    ModerationLabel,
    OnlineOutbox,
    Recommendation,
    Report,
    User,
    utcnow,
)
from matchwise.errors import ArtifactError, NotFound, StoreUnavailable
from matchwise.features.text import purge_texts, text_cache_dir
from matchwise.hashing import hash_id, hash_ids
from matchwise.registry import ArtifactStore, prune_versions
from matchwise.runtime import Runtime

log = logging.getLogger(__name__)


def export_events(session: Session, secret: str, since: datetime | None = None) -> pd.DataFrame:
    """Interaction events for analytics, with user ids replaced by keyed hashes."""
    stmt = select(
        Interaction.user_id,
        Interaction.target_user_id,
        Interaction.item_id,
        Interaction.action,
        Interaction.value,
        Interaction.position,
        Interaction.duration_ms,
        Interaction.route,
        Interaction.model_version,
        Interaction.sample_weight,
        Interaction.occurred_at,
    ).order_by(Interaction.id)
    if since is not None:
        stmt = stmt.where(Interaction.occurred_at >= since)
    frame = pd.DataFrame(session.execute(stmt).all())
    if frame.empty:
        return pd.DataFrame(
            columns=["user_hash", "target_user_hash", "item_id", "action", "value", "position",
                     "duration_ms", "route", "model_version", "sample_weight", "occurred_at"]
        )  # fmt: skip
    frame.insert(0, "user_hash", hash_ids(secret, frame.pop("user_id")))
    frame.insert(1, "target_user_hash", hash_ids(secret, frame.pop("target_user_id")))
    return frame


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(
        day=pd.to_datetime(rows["occurred_at"], utc=True).dt.date,
        route=rows["route"].fillna(""),
        model_version=rows["model_version"].fillna(""),
    )
    return (
        rows.groupby(["day", "action", "route", "model_version"])
        .agg(
            events=("action", "size"),
            weighted_events=("sample_weight", "sum"),
        )
        .reset_index()
    )


#: Raw events retention never deletes: a block must keep two people apart for good, and a
#: match keeps them out of each other's lists (erasure removes both with the person).
KEPT_ACTIONS = frozenset({"block", "match"})


def run_retention(
    runtime: Runtime,
    retention_days: int | None = None,
    model_retention_days: int | None = None,
    batch_size: int = 5000,
) -> dict[str, int]:
    """The retention job and ``matchwise retention``: events past ``retention_days`` and
    model versions past ``model_retention_days`` (settings by default)."""
    settings = runtime.settings
    return apply_retention(
        runtime.session,
        retention_days=retention_days or settings.retention_days,
        batch_size=batch_size,
        store=ArtifactStore(settings.artifact_root),
        model_retention_days=model_retention_days or settings.model_retention_days,
    )


def apply_retention(
    session_factory: Any,
    retention_days: int,
    batch_size: int = 5000,
    now: datetime | None = None,
    max_batches: int | None = None,
    store: ArtifactStore | None = None,
    model_retention_days: int | None = None,
) -> dict[str, int]:
    """Delete raw events older than the window, oldest first, in bounded batches; with
    ``store`` and ``model_retention_days``, also model versions older than that window
    (each type's active version and the one before it stay; see ``prune_versions``).

    Each batch is folded into ``interaction_daily`` and deleted in one transaction, so
    a crash between batches loses nothing and double counts nothing. Matches, and the
    events that keep people apart for good (blocks, matches: see ``KEPT_ACTIONS``), are
    kept for as long as the people are.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with session_factory() as session:
            rows = pd.DataFrame(
                session.execute(
                    select(
                        Interaction.id,
                        Interaction.action,
                        Interaction.route,
                        Interaction.model_version,
                        Interaction.sample_weight,
                        Interaction.occurred_at,
                    )
                    .where(
                        Interaction.occurred_at < cutoff,
                        Interaction.action.not_in(sorted(KEPT_ACTIONS)),
                    )
                    .order_by(Interaction.occurred_at, Interaction.id)
                    .limit(batch_size)
                ).all()
            )
            if rows.empty:
                break
            _add_aggregates(session, _aggregate(rows))
            ids = [int(i) for i in rows["id"]]
            session.execute(delete(Interaction).where(Interaction.id.in_(ids)))
            deleted += len(ids)
            batches += 1
    if deleted:
        with session_factory() as session:
            audit(session, "retention", "retention.delete", None,
                  {"deleted": deleted, "cutoff": cutoff.isoformat()})  # fmt: skip
    log.info("retention: deleted %s events older than %s", deleted, cutoff)
    stats = {"deleted": deleted, "batches": batches}
    if store is not None and model_retention_days is not None:
        older_than = (now or utcnow()) - timedelta(days=model_retention_days)
        with session_factory() as session:
            pruned = prune_versions(session, store, older_than)
        log.info("retention: deleted %s model versions older than %s", len(pruned), older_than)
        stats["models_pruned"] = len(pruned)
    return stats


def _add_aggregates(session: Session, agg: pd.DataFrame) -> None:
    """Add counts to the daily table (ON CONFLICT … DO UPDATE adds, never replaces)."""
    table = DailyAggregate.__table__
    records = [
        {
            "day": r.day,
            "action": r.action,
            "route": r.route,
            "model_version": r.model_version,
            "events": int(r.events),
            "weighted_events": float(r.weighted_events),
        }
        for r in agg.itertuples(index=False)
    ]
    for record in records:
        stmt = _insert(session, table).values(**record)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "action", "route", "model_version"],
            set_={
                "events": table.c.events + stmt.excluded.events,
                "weighted_events": table.c.weighted_events + stmt.excluded.weighted_events,
            },
        )
        session.execute(stmt)


# --- erasure --------------------------------------------------------------------------

ERASED = "[erased]"
_ID_CHAR = r"[A-Za-z0-9_@\-]"  # what ids are made of ('.' and ':' too, but not at their end)
#: Rows that may name a person without being theirs: rewritten, not deleted.
_NAMING: dict[type[Base], tuple[InstrumentedAttribute[Any], ...]] = {
    AuditLog: (AuditLog.actor, AuditLog.target, AuditLog.details),
    Job: (Job.dedupe_key, Job.payload, Job.result, Job.last_error),
    OnlineOutbox: (OnlineOutbox.payload,),
    ModerationFlag: (ModerationFlag.note, ModerationFlag.labels, ModerationFlag.resolved_by),
    ModerationLabel: (ModerationLabel.text, ModerationLabel.created_by),
    Report: (Report.details,),
}


@dataclass
class Scrubber:
    """Rewrites values so they no longer name a person: their id as a whole word (not
    inside a longer id) and their texts (the bio) become ``[erased]``; a list entry that
    is them (their id, or a pair holding it) is dropped."""

    user_id: str
    texts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        word = re.escape(self.user_id)
        self._id = re.compile(
            rf"(?<!{_ID_CHAR})(?<!{_ID_CHAR}[.:]){word}(?!{_ID_CHAR})(?![.:]{_ID_CHAR})"
        )
        self.texts = [t for t in self.texts if t and t.strip()]

    def text(self, value: str) -> str:
        for text in self.texts:
            value = value.replace(text, ERASED)
        return self._id.sub(ERASED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value if not self._is_them(v)]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value

    def _is_them(self, value: Any) -> bool:
        return value == self.user_id or (isinstance(value, list) and self.user_id in value)

    def patterns(self, column: InstrumentedAttribute[Any]) -> Iterator[Any]:
        """SQL conditions finding candidate rows (a superset: :meth:`value` decides)."""
        is_json = not isinstance(column.type, String)
        target = cast(column, Text) if is_json else column
        for needle in [self.user_id, *self.texts]:
            needle = json.dumps(needle)[1:-1] if is_json else needle  # as JSON stores it
            yield target.contains(needle, autoescape=True)


@dataclass
class _Erased:
    bio: str | None
    deleted: dict[str, int]
    scrubbed: dict[str, int]


def tombstone_of(secret: str, user_id: str) -> str:
    """What the audit log keeps of an erased person: a keyed hash, not the id."""
    return f"erased:{hash_id(secret, user_id)}"


def erase_user(runtime: Runtime, user_id: str, actor: str) -> dict[str, Any]:
    """Erase a person (GDPR art. 17): delete them and everything that is theirs, rewrite
    every row that names them, and clear them from Redis and the text cache; one audit
    entry remains, naming a keyed hash. The caches are cleared before the store (a cache
    that cannot be cleared stops the erasure: 503, nothing erased, retry) and again after
    it, for anything a refresh put back meanwhile. Trained models keep the person until
    the next retrain. :class:`NotFound` when there is nothing (left) to erase.
    """
    tombstone = tombstone_of(runtime.settings.hash_secret, user_id)
    with runtime.read_session() as session:
        user = session.get(User, user_id)
        if user is None:
            erased_before = session.scalar(
                select(AuditLog.id).where(AuditLog.action == "user.erase",
                                          AuditLog.target == tombstone).limit(1)
            )  # fmt: skip
            if erased_before is not None:
                raise NotFound(f"user {user_id!r} was already erased: nothing to erase")
            raise NotFound(f"unknown user {user_id!r}: nothing to erase")
        bio = user.bio
    cache_dir = text_cache_dir(runtime.settings.artifact_root)
    online = _erase_online(runtime.online, user_id)
    text_cache = purge_texts(cache_dir, [bio])
    erased = runtime.transaction(_erase_rows, user_id, tombstone, actor)
    try:  # what a concurrent refresh or catalogue reload put back meanwhile
        online += _erase_online(runtime.online, user_id)
        text_cache += purge_texts(cache_dir, [bio, erased.bio])
    except (StoreUnavailable, ArtifactError, OSError) as exc:
        log.warning("erasure: the second pass over the caches failed (%s)", exc)
    log.info("erased a user (%s)", tombstone)
    return {"tombstone": tombstone, "deleted": erased.deleted, "scrubbed": erased.scrubbed,
            "text_cache": text_cache, "online_keys": online}  # fmt: skip


def _erase_rows(session: Session, user_id: str, tombstone: str, actor: str) -> _Erased:
    """One transaction: the person's rows go, the rows naming them are rewritten, and the
    tombstone entry is written."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"unknown user {user_id!r}: nothing to erase")
    bio = user.bio
    scrub = Scrubber(user_id, [bio] if bio and len(bio.strip()) >= 8 else [])
    deleted: dict[str, int] = {}
    theirs = or_(Interaction.user_id == user_id, Interaction.target_user_id == user_id)
    _fold_into_aggregates(session, theirs)
    owned = {
        "interactions": delete(Interaction).where(theirs),
        "matches": delete(Match).where(or_(Match.user_a == user_id, Match.user_b == user_id)),
        "reports": delete(Report).where(
            or_(Report.reporter_id == user_id, Report.reported_id == user_id)
        ),
        "moderation_flags": delete(ModerationFlag).where(ModerationFlag.user_id == user_id),
        "recommendations": delete(Recommendation).where(
            or_(
                Recommendation.user_id == user_id,
                and_(Recommendation.candidate_kind == "user",
                     Recommendation.candidate_id == user_id),
            )
        ),  # their list, and them in everyone else's
        "experiment_teams": delete(ExperimentTeam).where(
            or_(
                ExperimentTeam.user_id == user_id,
                and_(ExperimentTeam.candidate_id == user_id,
                     ExperimentTeam.experiment_id.in_(
                         select(Experiment.id).where(Experiment.domain == "people"))),
            )
        ),  # their interleaved lists, and them in everyone else's
    }  # fmt: skip
    for name, stmt in owned.items():
        deleted[name] = _count(session, stmt)
    lists_changed(session, users=[user_id], candidates=[user_id])  # servers' copies
    notify(session, "user", ids=[user_id])  # servers patch them out of their catalogues
    deleted["users"] = _count(session, delete(User).where(User.id == user_id))
    owner = update(Item).where(Item.owner_id == user_id).values(owner_id=None)
    scrubbed = {"items": _count(session, owner)}
    for model, columns in _NAMING.items():
        name = model.__tablename__
        scrubbed[name], gone = _scrub_rows(session, model, columns, scrub)
        deleted[name] = deleted.get(name, 0) + gone
    deleted = {k: v for k, v in deleted.items() if v}
    scrubbed = {k: v for k, v in scrubbed.items() if v}
    # a person erasing themself acts as "user <id> (token)": the entry keeps the role only
    audit(session, scrub.text(actor), "user.erase", tombstone,
          {"deleted": deleted, "scrubbed": scrubbed})  # fmt: skip
    return _Erased(bio=bio, deleted=deleted, scrubbed=scrubbed)


def _fold_into_aggregates(session: Session, where: Any) -> None:
    """The person's events (both directions) become daily counts without an id, as
    retention keeps them: admin metrics keep their totals once the rows are gone."""
    rows = pd.DataFrame(
        session.execute(
            select(Interaction.action, Interaction.route, Interaction.model_version,
                   Interaction.sample_weight, Interaction.occurred_at).where(where)
        ).all(),
        columns=["action", "route", "model_version", "sample_weight", "occurred_at"],
    )  # fmt: skip
    if not rows.empty:
        _add_aggregates(session, _aggregate(rows))


def _count(session: Session, stmt: Any) -> int:
    """Rows a DELETE or UPDATE touched."""
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0)


def _scrub_rows(
    session: Session,
    model: type[Base],
    columns: tuple[InstrumentedAttribute[Any], ...],
    scrub: Scrubber,
) -> tuple[int, int]:
    """Rewrite the rows of ``model`` that name the person; returns (rewritten, deleted).
    Rows only about them go instead (see :func:`_only_theirs`)."""
    found = or_(*(condition for column in columns for condition in scrub.patterns(column)))
    rewritten = gone = 0
    rows: list[Any] = list(session.scalars(select(model).where(found)))
    for row in rows:
        if _only_theirs(row, scrub):
            session.delete(row)
            gone += 1
            continue
        changed = False
        for column in columns:
            before = getattr(row, column.key)
            after = scrub.value(before)
            if after != before:
                setattr(row, column.key, after)
                changed = True
        rewritten += changed
    session.flush()
    return rewritten, gone


def _only_theirs(row: Any, scrub: Scrubber) -> bool:
    """A refresh of their list, a moderator's label on their bio, an outbox entry that
    would be left empty."""
    if isinstance(row, Job):
        return row.job_type == "refresh_user" and row.payload.get("user_id") == scrub.user_id
    if isinstance(row, ModerationLabel):  # a label on their bio: training data about them
        return any(text in row.text for text in scrub.texts)
    if isinstance(row, OnlineOutbox):
        left = scrub.value(row.payload)
        return not any(ids for part in left.values() for ids in part.values())
    return False


def _erase_online(cache: OnlineCache | None, user_id: str, batch: int = 500) -> int:
    """Clear a person from Redis: their lists and seen sets, their id in the hidden set,
    in other people's seen sets, and other people's lists that hold them (deleted: the
    reader falls back to the database cache). Returns keys deleted or changed."""
    if cache is None:
        return 0
    client = cache.client
    try:
        pipe = client.pipeline(transaction=False)
        pipe.delete(*(f(kind, user_id) for kind in ("item", "user") for f in (list_key, seen_key)))
        pipe.srem(hidden_key("user"), user_id)
        touched = sum(int(n) for n in pipe.execute())
        seen_sets = list(client.scan_iter(match=f"{PREFIX}seen:user:*", count=1000))
        for start in range(0, len(seen_sets), batch):
            pipe = client.pipeline(transaction=False)
            for key in seen_sets[start : start + batch]:
                pipe.srem(key, user_id)
            touched += sum(int(n) for n in pipe.execute())
        lists = list(client.scan_iter(match=f"{PREFIX}rec:user:*", count=1000))
        for start in range(0, len(lists), batch):
            keys = lists[start : start + batch]
            payloads = client.mget(keys)
            naming = [k for k, p in zip(keys, payloads, strict=True)
                      if p is not None and user_id in orjson.loads(p).get("i", [])]  # fmt: skip
            if naming:
                touched += int(client.delete(*naming))
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailable(
            f"Redis did not answer ({type(exc).__name__}); nothing was erased, retry", public=True
        ) from exc
    return touched
