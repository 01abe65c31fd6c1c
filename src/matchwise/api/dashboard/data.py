"""What the dashboard's pages show, read from the store in one read session each.

The figures come from the services the admin API uses (registry, monitoring, moderation,
experiments, jobs); what is here is only the dashboard's own shaping: counts, the daily
series drawn this period against the previous one, pages of rows, and a profile without
the private fields (email, birth date, location, photo embeddings) an admin does not need.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matchwise.db.tables import (
    DailyAggregate,
    Interaction,
    Item,
    Job,
    Match,
    ModelVersion,
    Recommendation,
    Report,
    User,
    utcnow,
)
from matchwise.ops.analytics import CLICKS, CONVERSIONS
from matchwise.settings import Settings

PAGE_SIZE = 50
PERIODS = (7, 14, 30, 90)
#: Profile fields shown to an admin; the rest of a user row stays private.
PROFILE_FIELDS = ("id", "name", "age", "gender", "seeking", "city", "tags", "bio", "active",
                  "moderation_status", "created_at")  # fmt: skip
ITEM_FIELDS = ("id", "kind", "title", "category", "city", "owner_id", "starts_at", "tags",
               "active", "created_at")  # fmt: skip


@dataclass(frozen=True)
class Paged:
    rows: list[Any]
    page: int
    has_next: bool


def paged(rows: list[Any], page: int, size: int = PAGE_SIZE) -> Paged:
    """``rows`` fetched with ``limit(size + 1).offset(page * size)``: the page and whether
    another follows."""
    return Paged(rows[:size], page, len(rows) > size)


def counts(session: Session) -> dict[str, int]:
    def count(stmt: Any) -> int:
        return int(session.scalar(stmt) or 0)

    return {
        "users": count(select(func.count()).select_from(User)),
        "items": count(select(func.count()).select_from(Item)),
        "interactions": count(select(func.count()).select_from(Interaction)),
        "matches": count(select(func.count()).select_from(Match)),
        "active models": count(
            select(func.count()).select_from(ModelVersion).where(ModelVersion.is_active.is_(True))
        ),
    }


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def daily_actions(
    session: Session, since: datetime, until: datetime | None = None
) -> dict[date, dict[str, float]]:
    """Weighted events per day and action from ``since`` to ``until`` (raw events, and the
    days that retention folded into the daily aggregates)."""
    day = func.date(Interaction.occurred_at)
    raw = select(day, Interaction.action, func.sum(Interaction.sample_weight)).where(
        Interaction.occurred_at >= since
    )
    folded = select(DailyAggregate.day, DailyAggregate.action,
                    func.sum(DailyAggregate.weighted_events)
                    ).where(DailyAggregate.day >= since.date())  # fmt: skip
    if until is not None:
        raw = raw.where(Interaction.occurred_at < until)
        folded = folded.where(DailyAggregate.day < until.date())
    rows = [
        *session.execute(raw.group_by(day, Interaction.action)).all(),
        *session.execute(folded.group_by(DailyAggregate.day, DailyAggregate.action)).all(),
    ]
    out: dict[date, dict[str, float]] = {}
    for d, action, total in rows:
        bucket = out.setdefault(_day(d), {})
        bucket[action] = bucket.get(action, 0.0) + float(total or 0)
    return out


#: How long the overview reuses the figures of past days (today's are read every time).
PAST_DAYS_SECONDS = 300.0


@dataclass
class PastDays:
    """Per-day events of the days before today, read once and reused for a few minutes
    (a runtime component): past days barely change (late events, retention's folding),
    and reading them is the overview's one costly query, a scan of the periods' events."""

    since: date | None = None
    until: date | None = None  # the day they were read on (exclusive)
    read_at: float = 0.0
    days: dict[date, dict[str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session, since: date, today: date, tz: Any) -> dict[date, Any]:
        with self.lock:
            fresh = (self.since is not None and self.since <= since and self.until == today
                     and time.monotonic() - self.read_at < PAST_DAYS_SECONDS)  # fmt: skip
            if not fresh:
                self.days = daily_actions(session, _midnight(since, tz), _midnight(today, tz))
                self.since, self.until, self.read_at = since, today, time.monotonic()
            return self.days


def _midnight(day: date, tz: Any) -> datetime:
    return datetime.combine(day, datetime.min.time(), tz)


def _rate(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def day_figures(actions: dict[str, float], positive: set[str]) -> dict[str, float | None]:
    """One day's figures: events other than impressions, the positive share of them, and
    clicks, conversions and matches per impression."""
    shown = actions.get("impression", 0.0)
    feedback = sum(v for a, v in actions.items() if a != "impression")
    return {
        "interactions": feedback,
        "positive_rate": _rate(sum(actions.get(a, 0.0) for a in positive), feedback),
        "ctr": _rate(sum(actions.get(a, 0.0) for a in CLICKS), shown),
        "conversion": _rate(sum(actions.get(a, 0.0) for a in CONVERSIONS), shown),
        "match_rate": _rate(actions.get("match", 0.0), shown),
    }


SERIES = (("interactions", "Interactions", False), ("positive_rate", "Positive feedback", True),
          ("ctr", "CTR", True), ("conversion", "Conversion", True),
          ("match_rate", "Match rate", True))  # fmt: skip


def overview(
    session: Session,
    settings: Settings,
    days: int,
    past: PastDays | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Counts, and each series by day over the last ``days`` and the ``days`` before
    (the past days from ``past`` when given, today's read now)."""
    now = now or utcnow()
    today = now.date()
    start = today - timedelta(days=days - 1)
    before = start - timedelta(days=days)
    if past is None:
        per_day = daily_actions(session, _midnight(before, now.tzinfo))
    else:
        per_day = {**past.get(session, before, today, now.tzinfo),
                   **daily_actions(session, _midnight(today, now.tzinfo))}  # fmt: skip
    positive = {str(a) for a, rule in settings.action_table.items() if rule.positive}
    current_days = [start + timedelta(days=i) for i in range(days)]
    previous_days = [before + timedelta(days=i) for i in range(days)]
    cur = [day_figures(per_day.get(d, {}), positive) for d in current_days]
    prev = [day_figures(per_day.get(d, {}), positive) for d in previous_days]

    def period(days: list[date]) -> dict[str, float | None]:
        """The period's figures: its events summed, so a rate is events over impressions
        of the whole period (not a mean of noisy daily rates)."""
        summed: dict[str, float] = {}
        for d in days:
            for action, value in per_day.get(d, {}).items():
                summed[action] = summed.get(action, 0.0) + value
        return day_figures(summed, positive)

    this_period, last_period = period(current_days), period(previous_days)
    series = []
    for key, title, percent in SERIES:
        series.append({
            "key": key, "title": title, "percent": percent,
            "current": [f[key] for f in cur], "previous": [f[key] for f in prev],
            "this_period": this_period[key], "last_period": last_period[key],
        })  # fmt: skip
    return {
        "counts": counts(session),
        "days": days,
        "labels": [d.isoformat() for d in current_days],
        "series": series,
    }


def flatten(metrics: Any, prefix: str = "") -> dict[str, Any]:
    """A version's nested metrics as ``a.b.c -> value`` rows, numbers and text only."""
    out: dict[str, Any] = {}
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(metrics, int | float | str | bool) or metrics is None:
        out[prefix.rstrip(".")] = metrics
    return out


def profile(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in PROFILE_FIELDS}


def item_view(item: Item) -> dict[str, Any]:
    return {field: getattr(item, field) for field in ITEM_FIELDS}


def history(session: Session, user_id: str, limit: int = 20) -> list[Interaction]:
    return list(session.scalars(
        select(Interaction).where(Interaction.user_id == user_id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(limit)
    ))  # fmt: skip


def recommended_to(session: Session, candidate_id: str, limit: int = 20) -> list[Recommendation]:
    """The cached lists ``candidate_id`` is in, best placed first."""
    return list(session.scalars(
        select(Recommendation).where(Recommendation.candidate_id == candidate_id)
        .order_by(Recommendation.rank, Recommendation.score.desc()).limit(limit)
    ))  # fmt: skip


def reports_on(session: Session, user_ids: list[str]) -> dict[str, list[Report]]:
    """The reports filed on each flagged profile, newest first (their reasons and text)."""
    out: dict[str, list[Report]] = {u: [] for u in user_ids}
    if user_ids:
        rows = session.scalars(select(Report).where(Report.reported_id.in_(user_ids))
                               .order_by(Report.id.desc()))  # fmt: skip
        for row in rows:
            out[row.reported_id].append(row)
    return out


def jobs_page(session: Session, status: str | None, page: int) -> Paged:
    stmt = select(Job).order_by(Job.id.desc()).limit(PAGE_SIZE + 1).offset(page * PAGE_SIZE)
    if status:
        stmt = stmt.where(Job.status == status)
    return paged(list(session.scalars(stmt)), page)


def job_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {str(status): int(n) for status, n in rows}


def workers(session: Session) -> list[dict[str, Any]]:
    """Each worker holding a job now: its last heartbeat (the lease it extended last)."""
    rows = session.execute(
        select(Job.locked_by, func.max(Job.updated_at), func.max(Job.lease_expires_at),
               func.count())
        .where(Job.status == "running", Job.locked_by.is_not(None))
        .group_by(Job.locked_by)
    ).all()  # fmt: skip
    return [{"worker": w, "last_beat": beat, "lease_until": lease, "jobs": int(n)}
            for w, beat, lease, n in rows]  # fmt: skip


def cache_freshness(
    session: Session, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """The ranking cache: users with a list, the oldest and newest list, and how many
    lists are older than ``cache_max_age_seconds`` (computed live instead)."""
    now = now or utcnow()
    limit = now - timedelta(seconds=settings.cache_max_age_seconds)
    per_user = (select(Recommendation.user_id, func.max(Recommendation.generated_at).label("at"))
                .group_by(Recommendation.user_id).subquery())  # fmt: skip
    n, oldest, newest = session.execute(
        select(func.count(), func.min(per_user.c.at), func.max(per_user.c.at))
    ).one()
    stale = session.scalar(select(func.count()).where(per_user.c.at < limit))
    return {
        "users_cached": int(n or 0),
        "oldest": oldest,
        "newest": newest,
        "stale": int(stale or 0),
        "max_age_seconds": settings.cache_max_age_seconds,
    }
