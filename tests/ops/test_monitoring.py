"""Monitoring (issue 13 item 5) on both stores: drift between a version's training sample
and what the ranking cache serves for it (a planted shift is flagged, the unshifted cache
is not), coverage and freshness of known lists, impressions per route, online metrics per
model version, and the daily job that keeps its snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from matchwise.data.synthetic import generate_items
from matchwise.db.tables import Interaction, Item, Job, Recommendation, User, utcnow
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import Worker
from matchwise.ops.monitoring import latest_snapshot, monitoring_report
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.settings import MonitoringSettings, Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "artifacts"),
                        analytics_sample_rate=1.0,
                        monitoring=MonitoringSettings(min_sample=50))  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    yield runtime
    runtime.close()


def _trained_and_served(runtime: Runtime) -> str:
    """A store whose users all have long histories, EASE trained on it, every user's list
    in the ranking cache: returns the version."""
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_items(n_users=120, n_items=60, n_interactions=5000, seed=3, start=start,
                            kind="startup")  # fmt: skip
    write_bundle(runtime, bundle, runtime.settings.action_table)
    version = train_model(runtime, "ease", activate="always").version
    refresh_users(runtime, None, top_n=20)
    return version


def _psi(report: dict, version: str) -> dict[str, float]:
    (found,) = [d for d in report["drift"] if d["model_version"] == version]
    assert found["available"]
    return {row["feature"]: row["psi"] for row in found["features"]}


def _psi_flags(report: dict) -> set[str]:
    return {f["metric"] for f in report["flags"] if f["metric"].startswith("psi.")}


def test_a_planted_shift_is_flagged_and_unshifted_serving_is_not(store: Runtime) -> None:
    version = _trained_and_served(store)
    before = monitoring_report(store)
    psi = _psi(before, version)
    assert {"score", "user_age", "user_gender", "user_city", "user_events",
            "candidate_category", "candidate_city"} <= set(psi)  # fmt: skip
    assert max(psi.values()) < store.settings.monitoring.psi_warn, psi
    assert _psi_flags(before) == set()

    with store.session() as session:  # serve lower scores, to people who all moved away
        session.execute(update(Recommendation).where(Recommendation.model_version == version)
                        .values(score=Recommendation.score * 0.7))  # fmt: skip
        session.execute(update(User).values(city="Atlantis"))
    after = monitoring_report(store)
    shifted = _psi(after, version)
    assert shifted["score"] >= store.settings.monitoring.psi_alert
    assert shifted["user_city"] >= store.settings.monitoring.psi_alert
    assert _psi_flags(after) == {f"psi.{version}.score", f"psi.{version}.user_city"}
    levels = {f["metric"]: f["level"] for f in after["flags"]}
    assert levels[f"psi.{version}.score"] == "alert"
    assert shifted["candidate_category"] == pytest.approx(psi["candidate_category"])


def test_small_samples_are_shown_not_flagged(store: Runtime) -> None:
    version = _trained_and_served(store)
    with store.session() as session:
        session.execute(update(User).values(city="Atlantis"))
    store.settings.monitoring.min_sample = 10_000
    report = monitoring_report(store)
    assert _psi(report, version)["user_city"] >= store.settings.monitoring.psi_alert
    assert _psi_flags(report) == set()


def _known_store(runtime: Runtime) -> None:
    """8 active items and one inactive; three users' cached lists of known ages; two
    impressions, one outside the window."""
    now = utcnow()
    with runtime.session() as session:
        session.add_all([Item(id=f"i{n}", active=n != 9) for n in range(1, 10)])
        session.add_all([User(id=u) for u in ("u1", "u2", "u3")])
        session.flush()
        lists = {"u1": (["i1", "i2"], 1), "u2": (["i2", "i3"], 30), "u3": (["i9"], 2)}
        for user, (items, hours) in lists.items():
            for rank, item in enumerate(items, start=1):
                session.add(Recommendation(user_id=user, candidate_id=item, candidate_kind="item",
                                           score=0.5, rank=rank, model_version="v-none",
                                           generated_at=now - timedelta(hours=hours)))  # fmt: skip
        for n, (item, days, route) in enumerate([("i4", 1, "cache"), ("i5", 10, "warm")]):
            session.add(Interaction(event_id=f"e{n}", user_id="u1", item_id=item,
                                    action="impression", route=route,
                                    occurred_at=now - timedelta(days=days)))  # fmt: skip


def test_coverage_and_freshness_of_known_lists(store: Runtime) -> None:
    _known_store(store)
    store.settings.monitoring.coverage_min = 0.5
    report = monitoring_report(store, window_days=7)
    assert report["coverage"] == {"item": {"catalogue": 8, "cache": 3 / 8, "impressions": 1 / 8}}
    fresh = report["freshness"]
    assert fresh["lists"] == 3 and fresh["max_age_hours"] == 24
    assert fresh["median_hours"] == pytest.approx(2, abs=0.01)
    assert fresh["oldest_hours"] == pytest.approx(30, abs=0.01)
    assert fresh["p95_hours"] == pytest.approx(np.percentile([1, 2, 30], 95), abs=0.01)
    assert fresh["stale_share"] == pytest.approx(1 / 3)
    metrics = {f["metric"] for f in report["flags"]}
    assert metrics == {"coverage.item.cache", "freshness.stale_share"}
    assert report["drift"] == []  # v-none is no registered version


def test_impressions_per_route_and_online_metrics_per_version(store: Runtime) -> None:
    now = utcnow()
    events = [("impression", "cache", "v1")] * 6 + [("impression", "fallback", "heuristic")] * 4
    events += [("click", "cache", "v1")] * 3 + [("register", "cache", "v1")]
    events += [("click", "fallback", "heuristic")]
    with store.session() as session:
        session.add(User(id="u"))
        session.add(Item(id="i"))
        session.flush()
        for n, (action, route, version) in enumerate(events):
            session.add(Interaction(event_id=f"e{n}", user_id="u", item_id="i", action=action,
                                    route=route, model_version=version,
                                    occurred_at=now - timedelta(hours=1)))  # fmt: skip
    report = monitoring_report(store)
    impressions = report["routes"]["impressions"]
    assert impressions["counts"] == {"cache": 6, "fallback": 4}
    assert impressions["shares"] == {"cache": 0.6, "fallback": 0.4}
    assert sum(impressions["shares"].values()) == pytest.approx(1)
    assert "routes.impressions.fallback" in {f["metric"] for f in report["flags"]}  # 0.4 > 0.2
    online = {row["model_version"]: row for row in report["online"]}
    assert online["v1"]["ctr"] == pytest.approx(0.5)
    assert online["v1"]["conversion_rate"] == pytest.approx(1 / 6)
    assert online["heuristic"]["ctr"] == pytest.approx(0.25)
    assert online["v1"]["match_rate"] == 0


def test_the_job_runs_from_the_queue_and_keeps_its_snapshot(store: Runtime) -> None:
    _known_store(store)
    with store.session() as session:
        assert latest_snapshot(session) is None
        enqueue(session, "monitoring", {"window_days": 7}, dedupe_key="monitoring")
    worker = Worker(store, schedules={})
    assert worker.run(until_idle=True) == 1
    with store.session() as session:
        snapshot = latest_snapshot(session)
    assert snapshot is not None
    assert snapshot["coverage"]["item"]["cache"] == 3 / 8
    assert snapshot["window_days"] == 7
    assert {f["metric"] for f in snapshot["flags"]} == {"freshness.stale_share"}


def test_the_worker_queues_monitoring_when_due(store: Runtime) -> None:
    worker = Worker(store, schedules={"monitoring": 24})
    started = utcnow()
    assert worker.schedule() == []  # a fresh worker waits (an hour at most) before the first
    assert worker.schedule(now=started + timedelta(hours=2)) == ["monitoring"]
    assert worker.schedule(now=started + timedelta(hours=2)) == []  # queued already
    assert worker.run(until_idle=True) == 1
    assert worker.schedule(now=started + timedelta(hours=3)) == []  # ran an hour ago
    assert worker.schedule(now=started + timedelta(hours=30)) == ["monitoring"]
    assert Worker(store, schedules={"monitoring": 0}).schedule(started + timedelta(days=9)) == []
    with store.session() as session:
        kinds = [j.job_type for j in session.query(Job).all()]
    assert kinds == ["monitoring", "monitoring"]
