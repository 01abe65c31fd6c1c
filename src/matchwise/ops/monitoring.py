"""Monitoring (issue 13 item 5): is what serves still what was trained, and is it healthy?

One snapshot, computed from the store on demand (``GET /v1/admin/monitoring``,
``matchwise monitor``) and daily by the ``monitoring`` job, whose result keeps it:

- **coverage**: share of the catalogue in the ranking cache's lists and in the logged
  impressions of the window (:func:`~matchwise.experiments.drift.served_coverage`);
- **freshness**: age of the cached lists (median, p95, max) and the share older than
  ``cache_max_age_seconds`` (those are computed live instead of served from the cache);
- **routes**: share of recommendation requests per route (cache, cold, warm, hot,
  fallback) answered by this process since it started, and of the window's logged
  impressions per route (every host's);
- **online**: impressions, CTR, conversion and match rate per model version;
- **drift**: per model version in the cache, PSI of each feature and of the served
  scores against the sample saved at training (``experiments.reference``).

Thresholds (``settings.monitoring``) turn figures into flags. The maths lives in
``experiments.drift``; this module only gathers the inputs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import pandas as pd
from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from matchwise.db.queries import chunked
from matchwise.db.tables import (
    DailyAggregate,
    Interaction,
    Item,
    Job,
    ModelVersion,
    Recommendation,
    User,
    utcnow,
)
from matchwise.errors import InvalidInput
from matchwise.experiments.drift import feature_psi, served_coverage
from matchwise.experiments.reference import (
    REFERENCE_FILE,
    SCORE,
    Reference,
    candidate_features,
    read_reference,
    user_features,
)
from matchwise.ops.analytics import CLICKS, CONVERSIONS
from matchwise.runtime import Runtime
from matchwise.settings import Settings

log = logging.getLogger(__name__)

JOB_TYPE = "monitoring"
MATCHES = ("match",)
WARNING, ALERT = "warning", "alert"


# --- requests per route, counted by the API as it answers ------------------------------


@dataclass
class RouteCounts:
    """Recommendation requests this process answered, per route (a runtime component)."""

    since: datetime = field(default_factory=utcnow)
    _counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def route_counts(runtime: Runtime) -> RouteCounts:
    return runtime.component(RouteCounts, RouteCounts)


# --- the snapshot ------------------------------------------------------------------------


def monitoring_report(
    runtime: Runtime, window_days: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Every figure of the module docstring with the flags they raise (JSON-able)."""
    settings = runtime.settings
    days = window_days or settings.monitoring.window_days
    if not 1 <= days <= 3650:
        raise InvalidInput("window_days must be between 1 and 3650")
    now = now or utcnow()
    since = now - timedelta(days=days)
    with runtime.read_session() as session:
        coverage = _coverage(session, since)
        freshness = _freshness(session, settings, now)
        impressions = _impressions_by_route(session, since)
        online = _online(session, since)
        drift = _drift(session, settings)
    counted = route_counts(runtime)
    routes = {
        "requests": _shares(counted.snapshot()),
        "requests_since": counted.since.isoformat(),
        "impressions": _shares(impressions),
    }
    report = {
        "generated_at": now.isoformat(),
        "window_days": days,
        "coverage": coverage,
        "freshness": freshness,
        "routes": routes,
        "online": online,
        "drift": drift,
    }
    report["flags"] = flags(report, settings)
    return report


def _shares(counts: Mapping[str, float]) -> dict[str, Any]:
    total = float(sum(counts.values()))
    return {
        "total": round(total, 3),
        "counts": {k: round(v, 3) for k, v in sorted(counts.items())},
        "shares": {k: v / total for k, v in sorted(counts.items())} if total > 0 else {},
    }


def _coverage(session: Session, since: datetime) -> dict[str, Any]:
    """Per candidate kind with a catalogue: its size and the share the cached lists and
    the window's impressions show."""
    out: dict[str, Any] = {}
    kinds = {
        "item": (select(Item.id).where(Item.active.is_(True)), Interaction.item_id),
        "user": (select(User.id).where(User.active.is_(True), User.moderation_status == "ok"),
                 Interaction.target_user_id),
    }  # fmt: skip
    for kind, (catalogue_query, target) in kinds.items():
        cached = list(session.scalars(select(Recommendation.candidate_id).distinct()
                                      .where(Recommendation.candidate_kind == kind)))  # fmt: skip
        shown = list(session.scalars(select(target).distinct().where(
            Interaction.action == "impression", Interaction.occurred_at >= since,
            target.is_not(None))))  # fmt: skip
        if not cached and not shown:
            continue
        catalogue = list(session.scalars(catalogue_query))
        if not catalogue:
            continue
        out[kind] = {
            "catalogue": len(catalogue),
            "cache": served_coverage([cached], catalogue) if cached else None,
            "impressions": served_coverage([shown], catalogue) if shown else None,
        }
    return out


def _freshness(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """Age of each user's cached lists (the newest row per user and kind)."""
    newest = session.execute(
        select(func.max(Recommendation.generated_at))
        .group_by(Recommendation.user_id, Recommendation.candidate_kind)
    ).scalars()  # fmt: skip
    ages = np.array([(now - _aware(g)).total_seconds() / 3600 for g in newest if g is not None])
    max_age_hours = settings.cache_max_age_seconds / 3600
    if ages.size == 0:
        return {"lists": 0, "max_age_hours": max_age_hours, "median_hours": None,
                "p95_hours": None, "oldest_hours": None, "stale_share": None}  # fmt: skip
    return {
        "lists": int(ages.size),
        "max_age_hours": max_age_hours,
        "median_hours": float(np.median(ages)),
        "p95_hours": float(np.percentile(ages, 95)),
        "oldest_hours": float(ages.max()),
        "stale_share": float(np.mean(ages > max_age_hours)),
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def _impressions_by_route(session: Session, since: datetime) -> dict[str, float]:
    """Logged impressions per route (sampling weights applied; folded days included)."""
    route = func.coalesce(Interaction.route, literal_column("''"))
    raw = session.execute(
        select(route, func.sum(Interaction.sample_weight))
        .where(Interaction.action == "impression", Interaction.occurred_at >= since)
        .group_by(route)
    ).all()
    folded = session.execute(
        select(DailyAggregate.route, func.sum(DailyAggregate.weighted_events))
        .where(DailyAggregate.action == "impression", DailyAggregate.day >= since.date())
        .group_by(DailyAggregate.route)
    ).all()
    counts: dict[str, float] = {}
    for name, total in [*raw, *folded]:
        key = str(name) or "unknown"
        counts[key] = counts.get(key, 0.0) + float(total or 0)
    return counts


def _online(session: Session, since: datetime) -> list[dict[str, Any]]:
    """Per model version the events carry: impressions, clicks, conversions, matches and
    their rates per impression (weighted like ``ops.analytics``)."""
    tracked = ("impression", *CLICKS, *CONVERSIONS, *MATCHES)
    version = func.coalesce(Interaction.model_version, literal_column("''"))
    raw = session.execute(
        select(version, Interaction.action, func.sum(Interaction.sample_weight))
        .where(Interaction.occurred_at >= since, Interaction.action.in_(tracked))
        .group_by(version, Interaction.action)
    ).all()
    folded = session.execute(
        select(DailyAggregate.model_version, DailyAggregate.action,
               func.sum(DailyAggregate.weighted_events))
        .where(DailyAggregate.day >= since.date(), DailyAggregate.action.in_(tracked))
        .group_by(DailyAggregate.model_version, DailyAggregate.action)
    ).all()  # fmt: skip
    per: dict[str, dict[str, float]] = {}
    for name, action, total in [*raw, *folded]:
        bucket = per.setdefault(str(name or ""), {})
        bucket[action] = bucket.get(action, 0.0) + float(total or 0)
    out = []
    for name, counts in sorted(per.items()):
        shown = counts.get("impression", 0.0)
        clicks = sum(counts.get(a, 0.0) for a in CLICKS)
        conversions = sum(counts.get(a, 0.0) for a in CONVERSIONS)
        matches = sum(counts.get(a, 0.0) for a in MATCHES)
        out.append({
            "model_version": name or None,
            "impressions": round(shown, 3),
            "clicks": round(clicks, 3),
            "ctr": clicks / shown if shown > 0 else None,
            "conversions": round(conversions, 3),
            "conversion_rate": conversions / shown if shown > 0 else None,
            "matches": round(matches, 3),
            "match_rate": matches / shown if shown > 0 else None,
        })  # fmt: skip
    return out


# --- drift -------------------------------------------------------------------------------


def load_reference(uri: str) -> Reference | None:
    """The sample saved with a version's artifact; None when it has none (trained before
    monitoring existed, or the sample could not be drawn)."""
    path = f"{uri.rstrip('/')}/{REFERENCE_FILE}"
    try:
        with fsspec.open(path, "r") as handle:
            return read_reference(json.load(handle))
    except FileNotFoundError:
        return None


def _drift(session: Session, settings: Settings) -> list[dict[str, Any]]:
    versions = list(session.scalars(select(Recommendation.model_version).distinct()))
    rows = session.execute(select(ModelVersion.version, ModelVersion.uri)
                           .where(ModelVersion.version.in_(versions))).all()  # fmt: skip
    out = []
    for version, uri in sorted(rows):
        reference = load_reference(uri)
        if reference is None:
            out.append({"model_version": version, "available": False, "features": [],
                        "note": "no reference sample saved with this version"})  # fmt: skip
            continue
        out.append(version_drift(session, settings, version, reference))
    return out


def version_drift(
    session: Session, settings: Settings, version: str, reference: Reference
) -> dict[str, Any]:
    """PSI of each feature (and of the scores) between the version's training sample and
    what the ranking cache holds for it, with both sample sizes."""
    cached = pd.DataFrame(
        session.execute(
            select(Recommendation.user_id, Recommendation.candidate_id,
                   Recommendation.candidate_kind, Recommendation.rank, Recommendation.score)
            .where(Recommendation.model_version == version)
        ).all(),
        columns=["user_id", "candidate_id", "kind", "rank", "score"],
    )  # fmt: skip
    current: dict[str, np.ndarray] = {}
    served_users = sorted(set(cached["user_id"]))
    profiles = _frame(session, User, ["id", "age", "gender", "city"], served_users)
    events = _events(session, settings, served_users)
    profiles = profiles.set_index("id").reindex(served_users).reset_index()
    current.update(user_features(profiles, [events.get(u, 0) for u in served_users]))
    pairs = {name: reference.features[name] for name in current if name in reference.features}
    sizes = {name: (len(reference.features[name]), len(current[name])) for name in pairs}
    if reference.top_k and SCORE in reference.features:
        rank = min(reference.top_k, int(cached["rank"].max()))
        listed = cached[(cached["rank"] <= rank) & (cached["kind"] == "item")]
        ids = sorted(set(listed["candidate_id"]))
        items = _frame(session, Item, ["id", "category", "city"], ids)
        items = items.set_index("id").reindex(listed["candidate_id"].tolist()).reset_index()
        per_candidate = {**candidate_features(items), SCORE: listed["score"].to_numpy(np.float64)}
        for name, values in per_candidate.items():
            if name in reference.features and len(values):
                pairs[name] = reference.up_to_rank(name, rank)
                current[name] = values
                sizes[name] = (len(pairs[name]), len(values))
    usable = {n: v for n, v in pairs.items() if sizes[n][0] > 0 and sizes[n][1] > 0}
    psi = feature_psi(usable, {n: current[n] for n in usable})
    return {
        "model_version": version,
        "available": True,
        "features": [
            {"feature": name, "psi": psi[name], "reference_n": sizes[name][0],
             "current_n": sizes[name][1]}
            for name in sorted(psi)
        ],
    }  # fmt: skip


def _frame(session: Session, table: Any, columns: list[str], ids: list[str]) -> pd.DataFrame:
    cols = [getattr(table, c) for c in columns]
    rows: list[Any] = []
    for part in chunked(ids):
        rows.extend(session.execute(select(*cols).where(table.id.in_(part))).all())
    return pd.DataFrame(rows, columns=columns)


def _events(session: Session, settings: Settings, users: list[str]) -> dict[str, int]:
    """Distinct candidates each user has a labelled interaction with (training's count)."""
    labelled = [a for a, rule in settings.action_table.items() if rule.label is not None]
    labelled.append("rate")
    target = func.coalesce(Interaction.item_id, Interaction.target_user_id)
    counts: dict[str, int] = {}
    for part in chunked(users):
        counts.update(session.execute(
            select(Interaction.user_id, func.count(target.distinct()))
            .where(Interaction.user_id.in_(part), Interaction.action.in_(labelled),
                   target.is_not(None))
            .group_by(Interaction.user_id)
        ).tuples().all())  # fmt: skip
    return counts


# --- flags -------------------------------------------------------------------------------


def _flag(metric: str, value: float, threshold: float, level: str, message: str) -> dict[str, Any]:
    return {"metric": metric, "value": value, "threshold": threshold, "level": level,
            "message": message}  # fmt: skip


def flags(report: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """The figures past their thresholds (``settings.monitoring``), alerts first."""
    limits = settings.monitoring
    out = []
    for version in report["drift"]:
        for row in version["features"]:
            psi, name = row["psi"], f"psi.{version['model_version']}.{row['feature']}"
            if row["current_n"] < limits.min_sample or psi < limits.psi_warn:
                continue
            level, threshold = (ALERT, limits.psi_alert) if psi >= limits.psi_alert \
                else (WARNING, limits.psi_warn)  # fmt: skip
            out.append(_flag(name, psi, threshold, level,
                             f"{row['feature']} served by {version['model_version']} has "
                             f"shifted from its training sample (PSI {psi:.3f})"))  # fmt: skip
    for kind, row in report["coverage"].items():
        share = row["cache"]
        if share is not None and share < limits.coverage_min:
            out.append(_flag(f"coverage.{kind}.cache", share, limits.coverage_min, WARNING,
                             f"the cached lists show {share:.1%} of the {kind} catalogue"),
                       )  # fmt: skip
    stale = report["freshness"]["stale_share"]
    if stale is not None and stale > limits.stale_share_max:
        out.append(_flag("freshness.stale_share", stale, limits.stale_share_max, WARNING,
                         f"{stale:.1%} of cached lists are older than cache_max_age_seconds "
                         "(is the refresh job running?)"))  # fmt: skip
    for source in ("requests", "impressions"):
        fallback = report["routes"][source]["shares"].get("fallback")
        if fallback is not None and fallback > limits.fallback_share_max:
            out.append(_flag(f"routes.{source}.fallback", fallback, limits.fallback_share_max,
                             WARNING, f"{fallback:.1%} of {source} were answered by the "
                             "fallback (no active model for those users)"))  # fmt: skip
    return sorted(out, key=lambda f: f["level"] != ALERT)


# --- stored snapshots ----------------------------------------------------------------------


def latest_snapshot(session: Session) -> dict[str, Any] | None:
    """The last snapshot the ``monitoring`` job stored (its result), None before the first."""
    job = session.scalar(
        select(Job).where(Job.job_type == JOB_TYPE, Job.status == "done")
        .order_by(Job.finished_at.desc(), Job.id.desc()).limit(1)
    )  # fmt: skip
    if job is None or not job.result:
        return None
    return dict(job.result)
