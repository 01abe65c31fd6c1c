"""One score scale on every route: each served ``score`` lies in [0, 1], higher is better,
and a list comes in the order of the model (or blend) that made it, on generated stores
like the demo's and on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise import registry
from matchwise.data.synthetic import generate_items, generate_people
from matchwise.db import queries
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import reset_serving_state, serving_state
from matchwise.serve.types import RecommendationList, RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

ANY_TIME = RecommendFilters(include_past=True)
TINY = {
    "logistic": {"epochs": 2},
    "two_tower": {"epochs": 2, "patience": 1},
    "hybrid": {"n_candidates": 40, "folds": 1, "ranker": {"n_estimators": 20}},
}


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=150, n_items=120, n_interactions=6000, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    yield runtime
    runtime.close()


def _user(runtime: Runtime, low: int, high: int) -> str:
    with runtime.session() as s:
        for i in range(150):
            if low <= queries.history_of(s, f"u{i}").count() <= high:
                return f"u{i}"
    raise AssertionError(f"no user with {low}-{high} interactions")


def _on_the_scale(result: RecommendationList) -> None:
    scores = [r.score for r in result.recommendations]
    assert scores and all(0.0 <= s <= 1.0 for s in scores), (result.route, scores[:5])
    assert all(a >= b for a, b in zip(scores, scores[1:], strict=False)), scores


def _in_the_models_order(runtime: Runtime, result: RecommendationList, model_type: str) -> None:
    """The served list is the model's own order and each score its ``unit_scores``."""
    with runtime.session() as s:
        loaded = serving_state(runtime).model(s, model_type)
    assert loaded is not None and loaded.version == result.model_version
    row = loaded.user_row(runtime.settings.hash_secret, result.user_id)
    model = loaded.trained.model
    raw = np.asarray(model.score(np.array([row])), dtype=np.float64)[0]
    cols = [loaded.trained.item_index[r.candidate_id] for r in result.recommendations]
    assert (np.diff(raw[cols]) <= 1e-5).all(), raw[cols][:5]
    unit = np.round(model.unit_scores(raw[cols]), 6)
    assert np.allclose(unit, [r.score for r in result.recommendations], atol=2e-5)


def test_every_item_model_serves_scores_on_0_1_in_its_own_order(store: Runtime) -> None:
    warm, hot, cold = _user(store, 6, 19), _user(store, 25, 10**6), _user(store, 0, 2)
    with store.session() as s:
        heuristic = recommend(store, s, cold, limit=20, kind="item", filters=ANY_TIME)
    assert heuristic.route == "cold"
    _on_the_scale(heuristic)
    trained = {name: train_model(store, name, domain="items", activate="always",
                                 config_overrides=TINY.get(name))
               for name in ("logistic", "two_tower", "ease")}  # fmt: skip
    for best in trained:  # each model in turn measures best, so it serves the warm user
        for name, result in trained.items():
            with store.session() as s:
                row = registry.get_version(s, result.version)
                ndcg = 0.9 if name == best else 0.1
                row.metrics = {**row.metrics, "validation": {**row.metrics["validation"],
                                                             "ndcg@10": ndcg}}  # fmt: skip
        reset_serving_state(store)
        with store.session() as s:
            served = recommend(store, s, warm, limit=20, kind="item", filters=ANY_TIME)
        assert served.route == "warm" and served.model_version == trained[best].version
        _on_the_scale(served)
        _in_the_models_order(store, served, best)
    pipeline = train_model(store, "hybrid", domain="items", activate="always",
                           config_overrides=TINY["hybrid"])  # fmt: skip
    reset_serving_state(store)
    with store.session() as s:
        served = recommend(store, s, hot, limit=20, kind="item", filters=ANY_TIME)
    assert served.route == "hot" and served.model_version == pipeline.version
    _on_the_scale(served)
    _in_the_models_order(store, served, "hybrid")
    refresh_users(store, [warm, hot, cold], top_n=20, kind="item")
    with store.session() as s:
        for user in (warm, hot, cold):
            cached = recommend(store, s, user, limit=20, kind="item")
            assert cached.route == "cache"
            _on_the_scale(cached)


def test_people_blend_scores_on_0_1_on_every_route(db_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=200, n_swipes=3000, seed=8)
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    users = [str(u) for u in bundle.users["id"][:40]]
    try:
        with runtime.session() as s:
            before = [recommend(runtime, s, u, limit=20, kind="user", use_cache=False)
                      for u in users]  # fmt: skip
        train_model(runtime, "reciprocal", domain="people", activate="always")
        reset_serving_state(runtime)
        with runtime.session() as s:
            after = [recommend(runtime, s, u, limit=20, kind="user", use_cache=False)
                     for u in users]  # fmt: skip
        routes = {r.route for r in before + after if r.recommendations}
        assert {"cold", "fallback"} & routes and {"warm", "hot"} & routes, routes
        for result in before + after:
            if result.recommendations:
                _on_the_scale(result)
    finally:
        runtime.close()
