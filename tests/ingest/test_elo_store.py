"""Desirability in the store: swipes move the target's Elo, bulk loads replay once."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from matchwise.db.tables import User
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from tests.utils.factories import people_fixture


def _elo(runtime: Runtime, user: str) -> float:
    with runtime.session() as s:
        return float(s.scalar(select(User.elo).where(User.id == user)))


def _swipe(runtime: Runtime, actor: str, target: str, action: str) -> None:
    with runtime.session() as s:
        ingest_events(s, [InteractionIn(user_id=actor, target_user_id=target, action=action)],
                      runtime.settings.action_table, elo=runtime.settings.elo)  # fmt: skip


def test_likes_raise_and_passes_lower_the_target(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
    start = _elo(runtime, "bob")
    _swipe(runtime, "alice", "bob", "like")
    liked = _elo(runtime, "bob")
    assert liked > start and _elo(runtime, "alice") == start  # only the target moves
    _swipe(runtime, "erin_woman", "bob", "pass")
    assert _elo(runtime, "bob") < liked
    _swipe(runtime, "alice", "carl", "superlike")
    _swipe(runtime, "erin_woman", "ivan", "like")
    assert _elo(runtime, "carl") - start > _elo(runtime, "ivan") - start  # superlike counts more
    _swipe(runtime, "alice", "dan_too_old", "view")  # not a decision: no change
    assert _elo(runtime, "dan_too_old") == start


def test_bulk_load_replays_swipes_once(runtime: Runtime) -> None:
    from matchwise.data.synthetic import generate_people

    bundle = generate_people(n_users=120, n_swipes=2000, seed=4)
    settings = runtime.settings
    stats = write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    assert stats["rated"] > 0
    with runtime.session() as s:
        first = dict(s.execute(select(User.id, User.elo)).all())
    assert len({round(v, 6) for v in first.values()}) > 50  # ratings spread out
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    with runtime.session() as s:
        again = dict(s.execute(select(User.id, User.elo)).all())
    assert again == first
    users = bundle.meta["truth"]["users"]
    truth = (users.set_index("id") if "id" in users.columns else users)["attractiveness"]
    rating = pd.Series(first).reindex(truth.index)
    assert truth.corr(rating, method="spearman") > 0.5  # Elo recovers hidden desirability
