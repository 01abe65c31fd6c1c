"""``GET /v1/recommendations``'s ``offset``, ``exclude`` and ``explain``: a page is the
same on the live, database-cache and Redis tiers; bad pages are a clear 422; an
explanation's contributions add up to the score before the scale map, and it says how it
was obtained on a cached list. Both stores, a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from matchwise.api import create_app
from matchwise.data.synthetic import generate_items, generate_people
from matchwise.db.online import list_key
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.bulk import write_bundle
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import reset_serving_state
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

USER = "u1"
BLEND_SIGNALS = {"model", "reciprocal", "compatibility", "bio", "interaction", "elo",
                 "popularity", "swipe_rates"}  # fmt: skip


def _open(db_url: str, redis_url: str, tmp_path: Path) -> Runtime:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"),
                        redis_url=redis_url, analytics_sample_rate=1.0)  # fmt: skip
    return Runtime.open(settings, migrate=False)


@pytest.fixture
def items(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = _open(db_url, redis_url, tmp_path)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=60, n_items=150, n_interactions=1500, seed=4, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    yield runtime
    runtime.close()


@pytest.fixture
def people(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = _open(db_url, redis_url, tmp_path)
    bundle = generate_people(n_users=150, n_swipes=2500, seed=8)
    write_bundle(runtime, bundle, runtime.settings.action_table, elo=runtime.settings.elo)
    yield runtime
    runtime.close()


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _get(client: TestClient, user: str = USER, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/recommendations", params={"user_id": user, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _ids(body: dict[str, Any]) -> list[str]:
    return [r["candidate_id"] for r in body["recommendations"]]


def _page(client: TestClient, excluded: list[str], **params: Any) -> dict[str, Any]:
    """Offset 5, 10 long, without ``excluded`` given both ways (repeated, comma-separated)."""
    exclude = [excluded[0], ",".join(excluded[1:])]
    return _get(client, kind="item", **{"limit": 10, "offset": 5, "exclude": exclude, **params})


def test_a_page_is_the_same_on_every_tier(items: Runtime) -> None:
    refresh_users(items, [USER], top_n=50, kind="item")
    assert items.online is not None
    with _client(items) as client:
        whole = _get(client, kind="item", limit=50)
        assert whole["route"] == "cache" and len(_ids(whole)) >= 30
        excluded = [_ids(whole)[k] for k in (0, 3, 9)]  # two before the page, one in it
        rest = [i for i in _ids(whole) if i not in excluded]
        from_redis = _page(client, excluded)
        items.online.client.delete(list_key("item", USER))  # Redis gone: the database answers
        from_database = _page(client, excluded)
        live_whole = _get(client, kind="item", limit=50, fresh=True)
        live = _page(client, excluded, fresh=True)
        end = len(rest) - 2  # a page running past the cached list's end is computed live
        past_the_end = _page(client, excluded, offset=end)
        with items.session() as s:
            s.execute(delete(CachedRow))
        refresh_users(items, [USER], top_n=50, kind="item")  # Redis again, the database too
        with items.session() as s:
            s.execute(delete(CachedRow))
        again_redis = _page(client, excluded)
    for body in (from_redis, from_database, again_redis):
        assert body["route"] == "cache"
        assert _ids(body) == rest[5:15]
    assert live["route"] != "cache"
    assert _ids(live) == [i for i in _ids(live_whole) if i not in excluded][5:15]
    for body in (from_redis, from_database, live, again_redis):
        assert [r["rank"] for r in body["recommendations"]] == list(range(6, 16))
        assert not set(excluded) & set(_ids(body))
    assert past_the_end["route"] != "cache"
    assert _ids(past_the_end) == [i for i in _ids(live_whole) if i not in excluded][end : end + 10]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"offset": 995, "limit": 10}, "offset + limit must be at most 1000"),
        ({"offset": 991}, "offset + limit must be at most 1000"),  # with the default limit
        ({"exclude": ",".join(f"i{k}" for k in range(201))}, "at most 200"),
        ({"exclude": ["ok-1", "not an id"]}, "'not an id' is not an id"),
    ],
)
def test_bad_pages_are_a_clear_422(items: Runtime, params: dict[str, Any], words: str) -> None:
    with _client(items) as client:
        response = client.get("/v1/recommendations", params={"user_id": USER, **params})
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]


def test_negative_offset_is_a_422(items: Runtime) -> None:
    with _client(items) as client:
        response = client.get("/v1/recommendations", params={"user_id": USER, "offset": -1})
    assert response.status_code == 422


def _adds_up(body: dict[str, Any], signals: set[str]) -> None:
    assert body["recommendations"]
    for rec in body["recommendations"]:
        why = rec["explanation"]
        assert set(why["contributions"]) <= signals
        assert abs(sum(why["contributions"].values()) - why["raw_score"]) < 1e-5
        assert 0.0 <= why["score"] <= 1.0 and why["scale"]


def test_explain_adds_up_on_people_live_and_says_how_on_the_cache(people: Runtime) -> None:
    train_model(people, "reciprocal", domain="people", activate="always")
    reset_serving_state(people)
    ask = {"user": "p81", "kind": "user", "limit": 10}  # the busiest swiper: a hot user
    with _client(people) as client:
        plain = _get(client, **ask, fresh=True)
        live = _get(client, **ask, fresh=True, explain=True)
        refresh_users(people, ["p81"], top_n=10, kind="user")
        cached = _get(client, **ask, explain=True)
        cached_plain = _get(client, **ask)
    assert live["route"] in ("warm", "hot") and live["explained"] == "live"
    _adds_up(live, BLEND_SIGNALS)
    used = set().union(*(r["explanation"]["contributions"] for r in live["recommendations"]))
    assert {"model", "reciprocal", "compatibility", "elo", "popularity", "swipe_rates",
            "interaction"} <= used  # fmt: skip
    for rec in live["recommendations"]:  # live: the explanation is the served score's
        assert rec["explanation"]["score"] == pytest.approx(rec["score"], abs=1e-6)
    # explain=false (the default) answers as before: no explanation keys anywhere
    assert "explained" not in plain and "explanation" not in plain["recommendations"][0]
    assert "explained" not in cached_plain
    assert [(r["candidate_id"], r["score"]) for r in plain["recommendations"]] == [
        (r["candidate_id"], r["score"]) for r in live["recommendations"]
    ]
    assert cached["route"] == "cache" and cached["explained"] == "recomputed"
    assert cached["explained_at"] and cached["explained_by"] == live["model_version"]
    _adds_up(cached, BLEND_SIGNALS)


def test_explain_on_items_names_the_model_or_the_heuristics_parts(items: Runtime) -> None:
    with _client(items) as client:
        heuristic = _get(client, kind="item", limit=10, explain=True, include_past=True)
        _adds_up(heuristic, {"interests", "popularity", "city", "upcoming"})
        train_model(items, "ease", domain="items", activate="always")
        reset_serving_state(items)
        modelled = _get(client, kind="item", limit=10, explain=True, include_past=True)
    assert modelled["route"] in ("warm", "hot"), modelled["route"]
    _adds_up(modelled, {"model"})
    raw = np.array([r["explanation"]["raw_score"] for r in modelled["recommendations"]])
    assert (np.diff(raw) <= 1e-6).all()  # the model's order
    for rec in modelled["recommendations"]:  # EASE's scale: sigmoid of its raw score
        expected = 1 / (1 + np.exp(-rec["explanation"]["raw_score"]))
        assert rec["score"] == pytest.approx(expected, abs=2e-6)
