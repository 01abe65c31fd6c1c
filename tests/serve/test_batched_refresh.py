"""The block refresh (two reads and one bulk write per block of users) caches, for every
user, exactly the list a live request computes for them at the same moment: the same
candidates, ranks, scores, reasons, route and model version, on SQLite and PostgreSQL,
with blocks that do not divide the users evenly; a second refresh replaces every list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from matchwise.data.synthetic import generate_items
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    # 60 users over 1,500 events: most warm or hot (the two-tower over the ANN index), a
    # few cold (the heuristic)
    bundle = generate_items(n_users=60, n_items=70, n_interactions=1500, seed=5, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    train_model(runtime, "two_tower", domain="items", activate="always")
    yield runtime
    runtime.close()


def _cached(runtime: Runtime) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    with runtime.session() as s:
        rows = s.execute(
            select(CachedRow.user_id, CachedRow.candidate_id, CachedRow.rank, CachedRow.score,
                   CachedRow.reason, CachedRow.route, CachedRow.model_version,
                   CachedRow.generated_at).order_by(CachedRow.user_id, CachedRow.rank)
        ).all()  # fmt: skip
    for user, *row in rows:
        out.setdefault(user, []).append(tuple(row))
    return out


def test_block_refresh_caches_what_a_live_request_computes(store: Runtime) -> None:
    stats = refresh_users(store, None, top_n=10, kind="item", block=7)
    cached = _cached(store)
    assert stats["users"] == 60 and stats["rows"] == sum(len(v) for v in cached.values())
    routes = set()
    for user_id, rows in cached.items():
        now = rows[0][-1]
        with store.session() as s:
            live = recommend(store, s, user_id, limit=10, kind="item", use_cache=False,
                             now=now, experiments=False)  # fmt: skip
        expected = [(r.candidate_id, r.rank, r.score, r.reason, live.route, live.model_version,
                     now) for r in live.recommendations]  # fmt: skip
        assert rows == expected, user_id
        routes.add(live.route)
    assert {"warm", "cold"} <= routes  # both the model and the heuristic were compared
    assert len(cached) == 60

    again = refresh_users(store, None, top_n=5, kind="item", block=11)
    with store.session() as s:
        per_user = s.execute(
            select(CachedRow.user_id, func.count()).group_by(CachedRow.user_id)
        ).all()
    assert again["rows"] == sum(n for _, n in per_user)
    assert {n for _, n in per_user} == {5}  # every old list replaced, none left over
