"""Reasons that are true, on generated stores like the demo's, on every tier: a reason
never names the candidate itself or an item the user rejected, and "around you" or any
distance words only of people within the user's distance (``max_distance_km``, or the
default radius for a user who set none), computed between location cells."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, select

from matchwise.data.synthetic import generate_items, generate_people
from matchwise.db import queries
from matchwise.db.online import AsyncReader
from matchwise.db.tables import Item
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.features.compatibility import ProfileArrays, haversine_km
from matchwise.features.people import DISTANCE_BANDS, reason_for
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.tiers import answer
from matchwise.serve.types import RecommendationList, RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

DISTANCE_WORDS = ("around you", "distance you", *(words for _, words in DISTANCE_BANDS))
#: "Around you" for a user who set no max distance: the "in your area" band's edge.
DEFAULT_RADIUS_KM = 50.0


def _verdicts(runtime: Runtime, user_id: str) -> tuple[set[str], set[str]]:
    """(items the user engaged with positively, items they rejected), by the actions
    table: a label of 0.2 or less is a no, a rating of 2 or less too, 4 or more a yes."""
    table = runtime.settings.action_table
    liked, rejected = set(), set()
    with runtime.session() as s:
        history = queries.history_of(s, user_id)
    for item, action, value in zip(history.item_ids, history.actions, history.values,
                                   strict=True):  # fmt: skip
        rule = table.get(action)
        if item is None or rule is None:
            continue
        if action == "rate" and value is not None:
            (liked if value >= 4 else rejected if value <= 2 else set()).add(item)
        elif rule.positive:
            liked.add(item)
        elif rule.label is not None and rule.label <= 0.2:
            rejected.add(item)
    return liked - rejected, rejected


@pytest.fixture
def people_store(db_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, pd.DataFrame]]:
    """A dating population over three cities, half of it without a max distance (as
    exports often come), so far-away people reach each other's lists."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=240, n_swipes=2500, seed=5, n_cities=3)
    users = bundle.users.reset_index(drop=True)
    users.loc[users.index % 2 == 0, "max_distance_km"] = np.nan
    bundle.users = users
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    yield runtime, users
    runtime.close()


def _distance_lies(runtime: Runtime, users: pd.DataFrame, lists: list[RecommendationList]) -> int:
    """Reasons with distance words about someone beyond the user's distance."""
    cells = ProfileArrays.from_frame(users, runtime.settings.location_cell_km)
    at = {u: i for i, u in enumerate(cells.ids)}
    bad = 0
    for result in lists:
        me = at[result.user_id]
        radius = cells.max_distance_km[me]
        radius = DEFAULT_RADIUS_KM if np.isnan(radius) else radius
        for rec in result.recommendations:
            c = at[rec.candidate_id]
            km = haversine_km(cells.latitude[me], cells.longitude[me], cells.latitude[c],
                              cells.longitude[c])  # fmt: skip
            if any(w in rec.reason for w in DISTANCE_WORDS) and not km <= radius:
                bad += 1
    return bad


def test_people_reasons_say_around_you_only_within_the_users_distance(
    people_store: tuple[Runtime, pd.DataFrame],
) -> None:
    runtime, users = people_store
    ids = [str(u) for u in users["id"][:120]]

    def live() -> list[RecommendationList]:
        with runtime.session() as s:
            return [recommend(runtime, s, u, limit=30, kind="user", use_cache=False) for u in ids]

    fallback = live()  # no people model: the heuristic blend (cold and fallback routes)
    served = sum(len(r.recommendations) for r in fallback)
    around = sum("around you" in r.reason for x in fallback for r in x.recommendations)
    assert served > 1000 and around > 0  # the check below has something to bite on
    assert _distance_lies(runtime, users, fallback) == 0
    train_model(runtime, "reciprocal", domain="people", activate="always")
    modelled = live()
    assert {r.route for r in modelled} & {"warm", "hot"}
    assert _distance_lies(runtime, users, modelled) == 0
    refresh_users(runtime, ids, top_n=30, kind="user")
    with runtime.session() as s:
        cached = [recommend(runtime, s, u, limit=30, kind="user") for u in ids]
    assert sum(r.route == "cache" for r in cached) > len(ids) / 2  # empty lists go live
    assert _distance_lies(runtime, users, cached) == 0


def test_distance_words_only_within_the_radius() -> None:
    assert reason_for("popularity", {"distance_km": 3.0}) == "popular around you"
    assert reason_for("popularity", {"distance_km": 629.0}) == "popular right now"
    assert reason_for("popularity", {}) == "popular right now"  # unknown: not "around"
    assert reason_for("popularity", {"distance_km": 80.0, "radius_km": 100.0}) == (
        "popular around you"
    )
    assert reason_for("popularity", {"distance_km": 8.0, "radius_km": 5.0}) == "popular right now"
    assert reason_for("distance", {"distance_km": 80.0, "radius_km": 100.0}) == (
        "within the distance you chose"
    )
    assert "chose" not in reason_for("distance", {"distance_km": 80.0})
    assert reason_for("distance", {"distance_km": 80.0}) == "fits what you are both looking for"


@pytest.fixture
def items_store(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A generated events store (the demo's kind: recurring events share titles) with a
    small two-tower active, the model whose reasons name similar items; Redis on."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"),
                        redis_url=redis_url)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=150, n_items=120, n_interactions=6000, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    train_model(runtime, "two_tower", domain="items", activate="always",
                config_overrides={"epochs": 2, "patience": 1})  # fmt: skip
    yield runtime
    runtime.close()


def _similar_to_lies(runtime: Runtime, lists: list[RecommendationList]) -> tuple[int, int]:
    """("similar to" reasons, those naming the candidate itself, an item under its title,
    or anything but an item the user engaged with positively and never rejected)."""
    said = bad = 0
    with runtime.session() as s:
        titles = {i: t for i, t in s.execute(select(Item.id, Item.title))}
    for result in lists:
        liked, rejected = _verdicts(runtime, result.user_id)
        good = {titles.get(i) for i in liked} - {titles.get(i) for i in rejected}
        for rec in result.recommendations:
            if rec.reason.startswith("similar to "):
                said += 1
                named = rec.reason.removeprefix("similar to ")
                bad += named == rec.title or named not in good
    return said, bad


def _from_redis(runtime: Runtime, ids: list[str]) -> list[RecommendationList]:
    assert runtime.online is not None
    reader = AsyncReader(runtime.online.url, runtime.online.health, 1.0)

    async def read() -> list[RecommendationList]:
        try:
            return [await answer(runtime, reader, u, 30, "item") for u in ids]
        finally:
            await reader.close()

    return anyio.run(read)


def test_item_reasons_name_only_what_the_user_liked_never_the_candidate(
    items_store: Runtime,
) -> None:
    runtime = items_store
    ids = [f"u{i}" for i in range(150)]
    include_past = RecommendFilters(include_past=True)
    with runtime.session() as s:
        live = [recommend(runtime, s, u, limit=30, kind="item", filters=include_past,
                          use_cache=False) for u in ids]  # fmt: skip
    said, bad = _similar_to_lies(runtime, live)
    assert said > 20 and bad == 0, (said, bad)
    refresh_users(runtime, ids, top_n=30, kind="item")
    with runtime.session() as s:
        cached = [recommend(runtime, s, u, limit=30, kind="item") for u in ids]
    assert sum(r.route == "cache" for r in cached) > len(ids) / 2
    assert _similar_to_lies(runtime, cached)[1] == 0
    with runtime.session() as s:  # the database copy gone: Redis alone answers
        s.execute(delete(CachedRow))
    from_redis = _from_redis(runtime, ids)
    assert sum(r.route == "cache" for r in from_redis) > len(ids) / 2
    assert _similar_to_lies(runtime, from_redis)[1] == 0
