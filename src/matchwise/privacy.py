"""Privacy guardrails (seed 001): keyed hashes of user ids, retention with aggregates.

Analytics exports and training snapshots carry HMAC-SHA256 hashes of user ids under
``settings.hash_secret``: stable within one deployment (so joins work), useless to
anyone without the secret, and never the raw id, email or name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from matchwise.audit import audit
from matchwise.db.tables import DailyAggregate, Interaction, utcnow
from matchwise.ingest import _insert

log = logging.getLogger(__name__)


def hash_id(secret: str, value: str) -> str:
    """Keyed hash of one id: 32 hex characters."""
    return hmac.new(secret.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:32]


def hash_ids(secret: str, values: pd.Series) -> pd.Series:
    """Keyed hashes of a column of ids (None stays None); each distinct id hashed once."""
    uniques = pd.unique(values.dropna())
    mapping = {v: hash_id(secret, v) for v in uniques}
    return values.map(mapping)


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


def apply_retention(
    session_factory: Any,
    retention_days: int,
    batch_size: int = 5000,
    now: datetime | None = None,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Delete raw events older than the window, oldest first, in bounded batches.

    Each batch is folded into ``interaction_daily`` and deleted in one transaction, so
    a crash between batches loses nothing and double counts nothing. Matches are kept.
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
                    .where(Interaction.occurred_at < cutoff)
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
    return {"deleted": deleted, "batches": batches}


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


def oldest_event(session: Session) -> datetime | None:
    return session.scalar(select(func.min(Interaction.occurred_at)))
