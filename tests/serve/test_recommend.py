"""The heuristic recommender: honest exclusions, mutual preferences, readable reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matchwise.data.synthetic import generate_people
from matchwise.features.compatibility import (
    ProfileArrays,
    haversine_km,
    location_cell,
    mutual_preference_mask,
)
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, UserIn
from matchwise.serve.recommend import recommend
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture


def _seed(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())


def test_haversine_known_distance() -> None:
    berlin_munich = haversine_km(52.52, 13.405, np.array([48.137]), np.array([11.575]))
    assert berlin_munich[0] == pytest.approx(504, abs=5)


def test_people_heuristic_excludes_swiped_and_out_of_preference(runtime: Runtime) -> None:
    _seed(runtime)
    with runtime.session() as s:
        ingest_events(
            s,
            [InteractionIn(user_id="alice", target_user_id="carl", action="pass")],
            runtime.settings.action_table,
        )
    with runtime.session() as s:
        result = recommend(runtime, s, "alice", limit=20, kind="user")
    ids = [r.candidate_id for r in result.recommendations]
    assert set(ids) == {"bob", "ivan"}
    assert ids[0] == "ivan"  # same hobbies exactly (Jaccard 1) beats bob's 1 of 2
    reasons = {r.candidate_id: r.reason for r in result.recommendations}
    assert reasons == {"bob": "you both like hiking", "ivan": "you both like hiking"}


def test_candidate_who_liked_user_rises_with_reason(runtime: Runtime) -> None:
    _seed(runtime)

    def scores() -> dict[str, tuple[float, str]]:
        with runtime.session() as s:
            result = recommend(runtime, s, "alice", limit=10, kind="user")
        return {r.candidate_id: (r.score, r.reason) for r in result.recommendations}

    before = scores()
    with runtime.session() as s:
        ingest_events(
            s,
            [InteractionIn(user_id="carl", target_user_id="alice", action="like")],
            runtime.settings.action_table,
        )
    after = scores()
    assert after["carl"][0] > before["carl"][0]  # a like waiting: a likely match rises
    assert after["carl"][1] != "already likes you"  # a private swipe (reveal_likes_in_reasons)
    assert after["ivan"] == before["ivan"]


def test_items_heuristic_excludes_acted_on_and_past(runtime: Runtime) -> None:
    _seed(runtime)
    with runtime.session() as s:
        ingest_events(
            s,
            [InteractionIn(user_id="alice", item_id="e2", action="register")],
            runtime.settings.action_table,
        )
    with runtime.session() as s:
        result = recommend(runtime, s, "alice", kind="item")
        ids = [r.candidate_id for r in result.recommendations]
        assert ids and "e2" not in ids and "e3" not in ids
        tech = recommend(
            runtime, s, "alice", kind="item", filters=RecommendFilters(category="tech")
        )
    assert [r.candidate_id for r in tech.recommendations] == ["e4"]


def test_interest_tags_drive_item_reasons(runtime: Runtime) -> None:
    _seed(runtime)
    with runtime.session() as s:
        upsert_users(s, [UserIn(id="pyfan", tags=["python"], city="Munich")])
        result = recommend(runtime, s, "pyfan", kind="item", limit=1)
    top = result.recommendations[0]
    assert top.candidate_id == "e4"
    assert top.reason == "matches your interests: python"


def _random_people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genders = np.array(["woman", "man", "nonbinary"])
    rows = []
    for i in range(n):
        age = int(rng.integers(18, 70))
        lo = int(rng.integers(18, age + 1))
        rows.append(
            {
                "id": f"p{i}",
                "age": age if rng.random() > 0.05 else None,
                "gender": str(rng.choice(genders)),
                "seeking": list(rng.choice(genders, size=int(rng.integers(0, 3)), replace=False)),
                "age_min": lo if rng.random() > 0.1 else None,
                "age_max": int(rng.integers(lo, 80)),
                "max_distance_km": float(rng.choice([5, 20, 100, 1000])),
                "latitude": 52 + rng.normal(0, 1) if rng.random() > 0.1 else None,
                "longitude": 13 + rng.normal(0, 1),
                "tags": [],
            }
        )
    frame = pd.DataFrame(rows)
    frame.loc[frame["latitude"].isna(), "longitude"] = None
    return frame


def test_mutual_preference_mask_matches_a_plain_python_check() -> None:
    frame = _random_people(300, seed=7)
    p = ProfileArrays.from_frame(frame)
    records = frame.to_dict("records")

    def fits(a: dict, b: dict) -> bool:
        if a["seeking"] and b["gender"] not in a["seeking"]:
            return False
        if b["age"] is not None and not pd.isna(b["age"]):
            if a["age_min"] is not None and not pd.isna(a["age_min"]) and b["age"] < a["age_min"]:
                return False
            if a["age_max"] is not None and b["age"] > a["age_max"]:
                return False
        return True

    for u in range(0, 300, 17):
        mask = mutual_preference_mask(p, u, np.arange(300))
        a = records[u]
        for c in range(300):
            b = records[c]
            expected = c != u and fits(a, b) and fits(b, a)
            if expected and not pd.isna(a["latitude"]) and not pd.isna(b["latitude"]):
                # distances are between location cells, never exact positions
                a_cell = location_cell(a["latitude"], a["longitude"])
                b_cell = location_cell(b["latitude"], b["longitude"])
                d = haversine_km(*a_cell, *b_cell)
                expected = d <= min(a["max_distance_km"], b["max_distance_km"])
            assert mask[c] == expected, (u, c)


def test_people_heuristic_on_synthetic_data_never_breaks_preferences(settings: Settings) -> None:
    bundle = generate_people(n_users=300, n_swipes=3000, seed=3)
    runtime = Runtime.open(settings, migrate=False)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    profiles = ProfileArrays.from_frame(bundle.users.reset_index(drop=True))
    index = {ident: i for i, ident in enumerate(profiles.ids)}
    swiped = bundle.interactions.groupby("user_id")["target_user_id"].apply(set).to_dict()
    with runtime.session() as s:
        for user_id in list(profiles.ids[:40]):
            result = recommend(runtime, s, user_id, limit=50, kind="user")
            ids = [r.candidate_id for r in result.recommendations]
            assert not set(ids) & swiped.get(user_id, set())
            if ids:
                mask = mutual_preference_mask(
                    profiles, index[user_id], np.array([index[i] for i in ids])
                )
                assert mask.all()
    runtime.close()


def test_people_city_filter(runtime: Runtime) -> None:
    _seed(runtime)
    with runtime.session() as s:
        ivan = next(u for u in people_fixture() if u.id == "ivan")
        upsert_users(s, [ivan.model_copy(update={"city": "Potsdam"})])
        berlin = recommend(runtime, s, "alice", kind="user",
                           filters=RecommendFilters(city="berlin"))  # fmt: skip
        potsdam = recommend(runtime, s, "alice", kind="user",
                            filters=RecommendFilters(city="Potsdam"))  # fmt: skip
    assert {r.candidate_id for r in berlin.recommendations} == {"bob", "carl"}
    assert [r.candidate_id for r in potsdam.recommendations] == ["ivan"]
