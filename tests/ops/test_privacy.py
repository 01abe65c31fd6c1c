"""Privacy guardrails: hashed exports, retention that keeps aggregates, sampled analytics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from matchwise.db.tables import DailyAggregate, Interaction, Match, utcnow
from matchwise.ingest.events import ingest_events, keep_sample
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.analytics import personalization_metrics
from matchwise.ops.privacy import apply_retention, export_events, hash_id
from matchwise.runtime import Runtime
from matchwise.schemas import ImpressionEvent, InteractionIn, UserIn
from tests.utils.factories import items_fixture, people_fixture


def _seed_events(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.session() as s:
        upsert_users(
            s, [*people_fixture(), UserIn(id="u-secret", name="Jane Doe", email="jane@example.com")]
        )
        upsert_items(s, items_fixture())
        events = []
        for age_days in (1, 10, 89, 91, 120, 200):
            at = now - timedelta(days=age_days)
            events += [
                ImpressionEvent(event_type="impression", user_id="u-secret", candidate_kind="item",
                                candidate_ids=["e1", "e2"], timestamp=at, route="warm",
                                model_version="m1"),
                InteractionIn(user_id="u-secret", item_id="e1", action="click", timestamp=at,
                              route="warm", model_version="m1"),
                InteractionIn(user_id="alice", target_user_id="bob", action="like", timestamp=at),
            ]  # fmt: skip
        ingest_events(s, events, runtime.settings.action_table)
        ingest_events(
            s,
            [InteractionIn(user_id="bob", target_user_id="alice", action="like",
                           timestamp=now - timedelta(days=150))],
            runtime.settings.action_table,
        )  # fmt: skip


def test_export_has_no_raw_ids(runtime: Runtime) -> None:
    _seed_events(runtime)
    with runtime.session() as s:
        frame = export_events(s, runtime.settings.hash_secret)
    text = frame.to_csv()
    for raw in ("u-secret", "alice", "bob", "Jane Doe", "jane@example.com"):
        assert raw not in text
    assert hash_id(runtime.settings.hash_secret, "u-secret") in set(frame["user_hash"])
    assert hash_id("another-secret", "u-secret") != hash_id(
        runtime.settings.hash_secret, "u-secret"
    )


def test_retention_deletes_only_old_events_and_keeps_aggregates(runtime: Runtime) -> None:
    _seed_events(runtime)
    with runtime.session() as s:
        before = personalization_metrics(s, days=365)["totals"]
        total = s.scalar(select(func.count()).select_from(Interaction))
        cutoff = utcnow() - timedelta(days=90)
        old = s.scalar(select(func.count()).where(Interaction.occurred_at < cutoff))
    stats = apply_retention(runtime.session, retention_days=90, batch_size=4)
    assert stats["deleted"] == old and stats["batches"] >= 3
    with runtime.session() as s:
        left = s.scalars(select(Interaction.occurred_at)).all()
        assert len(left) == total - old
        assert min(left) >= cutoff
        assert s.scalar(select(func.count()).select_from(Match)) == 1  # matches are kept
        assert s.scalar(select(func.sum(DailyAggregate.events))) == old
        after = personalization_metrics(s, days=365)["totals"]
    assert after == before  # the metrics still see the deleted days, through the aggregates
    assert apply_retention(runtime.session, retention_days=90)["deleted"] == 0


def test_sampled_impressions_keep_ctr_unbiased(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        events = []
        for i in range(2000):
            events.append(ImpressionEvent(event_type="impression", event_id=f"imp{i}",
                                          user_id="alice", candidate_kind="item",
                                          candidate_ids=["e1"]))  # fmt: skip
            if i % 10 == 0:
                events.append(InteractionIn(event_id=f"clk{i}", user_id="alice", item_id="e1",
                                            action="click"))  # fmt: skip
        result = ingest_events(s, events, runtime.settings.action_table, sample_rate=0.1)
    assert 100 < result.written - 200 < 300  # about 10% of 2000 impressions kept
    assert result.sampled_out == 2200 - result.written
    with runtime.session() as s:
        totals = personalization_metrics(s, days=1)["totals"]
    assert totals["clicks"] == 200
    assert totals["impressions"] == pytest.approx(2000, rel=0.15)
    assert totals["ctr"] == pytest.approx(0.1, rel=0.15)
    assert keep_sample("x", 0.5) == keep_sample("x", 0.5)


def test_admin_metrics_per_day_and_model(runtime: Runtime) -> None:
    _seed_events(runtime)
    with runtime.session() as s:
        m = personalization_metrics(s, days=30)
    assert m["totals"]["impressions"] == 4 and m["totals"]["clicks"] == 2
    assert m["totals"]["ctr"] == 0.5
    assert len([d for d in m["daily"] if d["impressions"]]) == 2
    assert m["totals"]["conversions"] == 1  # today's match (bob liked alice back)
    by = {(r["model_version"], r["route"]): r for r in m["by_model"]}
    assert by[("m1", "warm")]["ctr"] == 0.5
