"""Admin metrics (seed 004): impressions, clicks, CTR and conversion, computed in SQL.

Impressions are sampled at ingest (``analytics_sample_rate``); each kept one carries
``sample_weight = 1 / rate``, so sums of weights estimate the true counts. Days whose
raw events passed the retention window come from the daily aggregates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from matchwise.db.tables import DailyAggregate, Interaction, utcnow
from matchwise.errors import InvalidInput

CLICKS = ("click",)
CONVERSIONS = ("register", "apply", "match", "interest", "attend")
TRACKED = ("impression", *CLICKS, *CONVERSIONS)


def _rate(num: float, den: float) -> float | None:
    return round(num / den, 6) if den > 0 else None


def _summarise(counts: dict[str, float]) -> dict[str, Any]:
    impressions = counts.get("impression", 0.0)
    clicks = sum(counts.get(a, 0.0) for a in CLICKS)
    conversions = sum(counts.get(a, 0.0) for a in CONVERSIONS)
    return {
        "impressions": round(impressions, 3),
        "clicks": round(clicks, 3),
        "ctr": _rate(clicks, impressions),
        "conversions": round(conversions, 3),
        "conversion_rate": _rate(conversions, impressions),
    }


def personalization_metrics(
    session: Session, days: int = 30, now: datetime | None = None
) -> dict[str, Any]:
    """Per day and per (model version, route) CTR and conversion over the last ``days``."""
    if not 1 <= days <= 3650:
        raise InvalidInput("days must be between 1 and 3650")
    now = now or utcnow()
    since = now - timedelta(days=days)
    day = func.date(Interaction.occurred_at)
    weight = func.sum(Interaction.sample_weight)
    raw_daily = session.execute(
        select(day, Interaction.action, weight)
        .where(Interaction.occurred_at >= since, Interaction.action.in_(TRACKED))
        .group_by(day, Interaction.action)
    ).all()
    version = func.coalesce(Interaction.model_version, literal_column("''"))
    route = func.coalesce(Interaction.route, literal_column("''"))
    raw_model = session.execute(
        select(version, route, Interaction.action, weight)
        .where(Interaction.occurred_at >= since, Interaction.action.in_(TRACKED))
        .group_by(version, route, Interaction.action)
    ).all()
    agg = session.execute(
        select(
            DailyAggregate.day,
            DailyAggregate.model_version,
            DailyAggregate.route,
            DailyAggregate.action,
            func.sum(DailyAggregate.weighted_events),
        )
        .where(DailyAggregate.day >= since.date(), DailyAggregate.action.in_(TRACKED))
        .group_by(
            DailyAggregate.day,
            DailyAggregate.model_version,
            DailyAggregate.route,
            DailyAggregate.action,
        )
    ).all()

    per_day: dict[str, dict[str, float]] = {}
    per_model: dict[tuple[str, str], dict[str, float]] = {}
    for d, action, total in raw_daily:
        per_day.setdefault(str(d), {})[action] = float(total or 0)
    for model_version, model_route, action, total in raw_model:
        bucket = per_model.setdefault((str(model_version), str(model_route)), {})
        bucket[action] = bucket.get(action, 0.0) + float(total or 0)
    for d, agg_version, agg_route, action, total in agg:
        # folded events are deleted in the same transaction (retention, erasure): a day
        # may have both, never the same event twice
        key = d.isoformat() if isinstance(d, date) else str(d)
        bucket = per_day.setdefault(key, {})
        bucket[action] = bucket.get(action, 0.0) + float(total or 0)
        model_bucket = per_model.setdefault((str(agg_version), str(agg_route)), {})
        model_bucket[action] = model_bucket.get(action, 0.0) + float(total or 0)

    totals: dict[str, float] = {}
    for counts in per_day.values():
        for action, value in counts.items():
            totals[action] = totals.get(action, 0.0) + value
    return {
        "days": days,
        "since": since.isoformat(),
        "totals": _summarise(totals),
        "daily": [{"day": d, **_summarise(c)} for d, c in sorted(per_day.items())],
        "by_model": [
            {"model_version": v or None, "route": r or None, **_summarise(c)}
            for (v, r), c in sorted(per_model.items())
        ],
    }
