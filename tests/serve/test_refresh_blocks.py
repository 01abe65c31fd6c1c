"""The vectorised block scorer (``serve.item_blocks``) gives every user of a block the
list a live request computes for them (``compute_for``) at the same moment: the same
items in the same order, the same reasons, titles, route and model version, scores equal
to float tolerance, on SQLite and PostgreSQL, for users on the model route (two-tower over
its HNSW index, with decided and past items masked), cold users and users the model does
not know (the heuristic), in blocks that split each route's users unevenly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve import item_blocks
from matchwise.serve.item_blocks import item_lists
from matchwise.serve.recommend import compute_for
from matchwise.serve.refresh import profiles_and_histories
from matchwise.serve.types import RecommendationList, RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    # 400 items: the HNSW index answers top 10 by its filtered search (not its exact
    # fallback); half the events start before now, so past items are masked too
    bundle = generate_items(n_users=90, n_items=400, n_interactions=3000, seed=21, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    train_model(runtime, "two_tower", domain="items", activate="always")
    # people who arrive after training: enough events for the warm route, unknown to the
    # model (the heuristic answers them, route "fallback")
    late = generate_items(n_users=25, n_items=400, n_interactions=500, seed=8, start=start)
    users = late.users.assign(id="late-" + late.users["id"])
    events = late.interactions.assign(user_id="late-" + late.interactions["user_id"],
                                      event_id="late-" + late.interactions["event_id"])  # fmt: skip
    write_bundle(runtime, DataBundle(users, late.items.iloc[:0], events), settings.action_table)
    yield runtime
    runtime.close()


def _key(result: RecommendationList) -> tuple:
    recs = [(r.candidate_id, r.rank, r.reason, r.title) for r in result.recommendations]
    return (result.user_id, result.route, result.model_version, recs)


def test_block_lists_equal_the_live_lists(store: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(item_blocks, "HEURISTIC_BLOCK", 7)  # several heuristic sub-blocks
    now = datetime.now(UTC)
    with store.session() as s:
        user_ids = sorted(profiles_and_histories(s, [f"u{n}" for n in range(90)]))
        user_ids += [f"late-u{n}" for n in range(25)]
        read = profiles_and_histories(s, user_ids)
        block = item_lists(store, s, read, user_ids, 10, now)
        live = [compute_for(store, s, *read[u], 10, "item", RecommendFilters(), now)
                for u in user_ids]  # fmt: skip
    assert [r.user_id for r in block] == user_ids
    routes, reasons = set(), set()
    for got, want in zip(block, live, strict=True):
        assert _key(got) == _key(want), got.user_id
        assert [r.score for r in got.recommendations] == pytest.approx(
            [r.score for r in want.recommendations], abs=1e-6)  # fmt: skip
        routes.add(got.route)
        reasons |= {r.reason.split(":")[0].split(" ")[0] for r in got.recommendations}
    # every route and every kind of reason was compared, not only the common ones
    assert {"warm", "cold", "fallback"} <= routes
    assert {"matches", "similar", "popular"} <= reasons
    assert all(len(r.recommendations) == 10 for r in block)
