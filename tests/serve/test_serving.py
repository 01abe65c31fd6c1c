"""Serving: the router, model fallback, cache freshness, and corrupt artifacts, on both
stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from matchwise import registry
from matchwise.data.synthetic import generate_items
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.db.tables import utcnow
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import Worker
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import reset_serving_state, serving_state
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"),
                        analytics_sample_rate=1.0)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=150, n_items=120, n_interactions=6000, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    yield runtime
    runtime.close()


def _user_with(runtime: Runtime, low: int, high: int) -> str:
    from matchwise.db import queries

    with runtime.session() as s:
        for i in range(150):
            h = queries.user_history(s, f"u{i}")
            n = int((h["action"] != "impression").sum())
            if low <= n <= high:
                return f"u{i}"
    raise AssertionError(f"no user with {low}-{high} interactions")


def _serve(runtime: Runtime, user: str, **kw: object):
    with runtime.session() as s:
        return recommend(runtime, s, user, limit=10, kind="item",
                         filters=RecommendFilters(include_past=True), **kw)  # fmt: skip


def test_routes_cold_warm_hot_and_fallback(store: Runtime) -> None:
    cold = _user_with(store, 0, 4)
    warm = _user_with(store, 5, 20)
    hot = _user_with(store, 21, 10_000)
    for user in (warm, hot):
        assert _serve(store, user).route == "fallback"  # no model yet: never an error
    assert _serve(store, cold).route == "cold"
    result = train_model(store, "ease", domain="items", activate="always")
    serving_state(store).invalidate()
    served = _serve(store, warm)
    assert served.route == "warm" and served.model_version == result.version
    assert len(served.recommendations) == 10
    assert all(r.reason for r in served.recommendations)
    assert _serve(store, hot).route == "hot"
    assert _serve(store, cold).route == "cold"


def test_the_model_that_measured_best_on_validation_serves_warm_users(store: Runtime) -> None:
    """Among active models that serve a tier, the one with the best validation NDCG@10
    (as registered) answers, whatever the order of their names."""
    warm = _user_with(store, 5, 20)
    ease = train_model(store, "ease", domain="items", activate="always")
    logistic = train_model(store, "logistic", domain="items", activate="always",
                           config_overrides={"epochs": 2})  # fmt: skip

    def measured(version: str, ndcg: float) -> None:
        with store.session() as s:
            row = registry.get_version(s, version)
            row.metrics = {**row.metrics, "validation": {**row.metrics["validation"],
                                                         "ndcg@10": ndcg}}  # fmt: skip

    for best, other in ((logistic, ease), (ease, logistic)):
        measured(best.version, 0.9)
        measured(other.version, 0.1)
        reset_serving_state(store)  # loaded afresh, with the registered figures
        assert _serve(store, warm).model_version == best.version


def test_recommendations_exclude_acted_items(store: Runtime) -> None:
    from matchwise.db import queries

    train_model(store, "ease", domain="items", activate="always")
    user = _user_with(store, 5, 10_000)
    with store.session() as s:
        history = queries.user_history(s, user)
    registered = set(history.loc[history["action"].isin(["register", "apply"]), "item_id"])
    served = {r.candidate_id for r in _serve(store, user).recommendations}
    assert served and not served & registered


def test_corrupt_new_version_keeps_the_previous_serving(store: Runtime) -> None:
    warm = _user_with(store, 5, 20)
    first = train_model(store, "ease", domain="items", activate="always")
    assert _serve(store, warm).model_version == first.version
    second = train_model(store, "ease", domain="items", activate="never", flags={"l2": 10.0})
    with store.session() as s:
        row = registry.get_version(s, second.registry_id)
        uri = row.uri
    (Path(uri) / "ease.npz").write_bytes(b"corrupt")
    with store.session() as s, pytest.raises(Exception, match="checksum"):
        registry.activate_version(s, registry.ArtifactStore(store.settings.artifact_root),
                                  second.registry_id)  # fmt: skip
    # force the active row onto the corrupt version behind the registry's back
    with store.session() as s:
        s.execute(update(registry.ModelVersion).values(is_active=False))
        chosen = registry.ModelVersion.id == second.registry_id
        s.execute(update(registry.ModelVersion).where(chosen).values(is_active=True))
    serving_state(store).invalidate()
    assert _serve(store, warm).model_version == first.version  # the loaded version serves on
    reset_serving_state(store)  # a fresh process: nothing loaded, corrupt active version
    assert _serve(store, warm).route == "fallback"


def test_rollback_restores_the_previous_model(store: Runtime) -> None:
    warm = _user_with(store, 5, 20)
    first = train_model(store, "ease", domain="items", activate="always")
    second = train_model(store, "ease", domain="items", activate="always", flags={"l2": 50.0})
    serving_state(store).invalidate()
    assert _serve(store, warm).model_version == second.version
    with store.session() as s:
        registry.rollback(s, registry.ArtifactStore(store.settings.artifact_root), "ease")
    serving_state(store).invalidate()
    assert _serve(store, warm).model_version == first.version


def test_cache_is_served_while_fresh_then_recomputed(store: Runtime) -> None:
    user = _user_with(store, 5, 20)
    stats = refresh_users(store, [user], top_n=10, kind="item")
    assert stats["rows"] > 0
    with store.session() as s:
        cached = recommend(store, s, user, limit=5, kind="item")
    assert cached.route == "cache" and len(cached.recommendations) == 5
    with store.session() as s:  # age the cache past cache_max_age_seconds
        old = utcnow() - timedelta(seconds=store.settings.cache_max_age_seconds + 5)
        s.execute(update(CachedRow).values(generated_at=old))
    with store.session() as s:
        live = recommend(store, s, user, limit=5, kind="item")
    assert live.route != "cache"
    off = store.settings.model_copy(update={"use_cache": False})
    refresh_users(store, [user], top_n=10, kind="item")
    with store.session() as s:
        assert (
            recommend(replace(store, settings=off), s, user, limit=5, kind="item").route != "cache"
        )


def test_retrain_job_registers_activates_and_refreshes(store: Runtime) -> None:
    from sqlalchemy import func, select

    with store.session() as s:
        job, created = enqueue(s, "retrain", {"models": ["ease"], "top_n": 5},
                                    dedupe_key="retrain")  # fmt: skip
        _, again = enqueue(s, "retrain", {"models": ["ease"]}, dedupe_key="retrain")
    assert created and not again
    bios = Worker(store, kinds=["embed_bios"])  # the profiles' bio vectors, queued first
    while bios.run_once() is not None:
        pass
    worker = Worker(store)
    done = worker.run_once()
    assert done.status == "done", done.last_error
    assert done.result["ease"]["activated"] is True
    with store.session() as s:
        assert registry.active_version(s, "ease") is not None
    refresh = worker.run_once()  # queued with the activation, in the same transaction
    assert refresh.id == done.result["refresh_job"] and refresh.status == "done"
    assert refresh.result["users"] == 150
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(CachedRow)) > 0
    second = Worker(store)
    with store.session() as s:
        enqueue(s, "retrain", {"models": ["ease"]}, dedupe_key="retrain")
    result = second.run_once().result["ease"]
    assert result["activated"] is False and "kept" in result["reason"]  # same data: not better


def test_people_route_uses_the_reciprocal_model(db_url: str, tmp_path: Path) -> None:
    from matchwise.data.synthetic import generate_people
    from matchwise.features.compatibility import ProfileArrays, mutual_preference_mask

    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=200, n_swipes=5000, seed=8)
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    result = train_model(runtime, "reciprocal", domain="people", activate="always")
    assert result.test["reciprocal"]["ndcg@10"] > 0
    counts = bundle.interactions["user_id"].value_counts()
    user = str(counts.index[0])
    with runtime.session() as s:
        served = recommend(runtime, s, user, limit=10, kind="user", use_cache=False)
    assert served.route == "hot" and served.model_version == result.version
    profiles = ProfileArrays.from_frame(bundle.users.reset_index(drop=True))
    index = {u: i for i, u in enumerate(profiles.ids)}
    ids = [r.candidate_id for r in served.recommendations]
    assert (
        ids
        and mutual_preference_mask(profiles, index[user], np.array([index[i] for i in ids])).all()
    )
    swiped = set(bundle.interactions.loc[bundle.interactions["user_id"] == user,
                                         "target_user_id"])  # fmt: skip
    assert not swiped & set(ids)
    assert all(r.reason for r in served.recommendations)
    runtime.close()


def test_people_two_tower_fuses_optional_photo_vectors(db_url: str, tmp_path: Path) -> None:
    """Seed 001's dual encoder: bios + behaviour + photo vectors some people lack."""
    from matchwise.data.synthetic import generate_people
    from matchwise.metrics import evaluate_full_ranking
    from matchwise.models.two_tower import TwoTowerRecommender
    from matchwise.train.dataset import build_dataset

    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=150, n_swipes=3000, seed=9)
    rng = np.random.default_rng(0)
    users = bundle.users.copy()
    users["photo_embeddings"] = [
        rng.normal(size=(2, 8)).tolist() if i % 3 else None for i in range(len(users))
    ]  # a third of the people have no photos
    bundle.users = users
    write_bundle(runtime, bundle, settings.action_table)
    with runtime.session() as s:
        ds = build_dataset(s, settings.action_table, settings.hash_secret, domain="people")
    assert "photo_vector" in ds.users.columns and ds.users["photo_vector"].isna().any()
    train, valid, test = ds.interaction_sets()
    model = TwoTowerRecommender(epochs=2, text_columns=[])
    model.fit(train, valid)
    assert {"user.photo_vector", "item.photo_vector", "user.like_history"} <= set(
        model.feature_names
    )  # image + behaviour fused with profile features; missing photos use a learned stand-in
    assert np.isfinite(model.score(np.arange(5))).all()
    assert evaluate_full_ranking(model, train, test, exclude=valid)["users"] > 0
    runtime.close()


def test_stale_catalogue_serves_while_a_background_reload_runs(store: Runtime) -> None:
    """No request waits for a reload: the stale catalogue answers, the fresh one (with a
    new item) replaces it once the background thread is done."""
    import threading

    from matchwise.ingest.profiles import upsert_items
    from matchwise.schemas import ItemIn

    state = serving_state(store)
    with store.session() as s:
        first = state.catalogue(s)
    assert "brand-new" not in first.position
    with store.session() as s:
        upsert_items(s, [ItemIn(id="brand-new", title="New", tags=["Jazz"], city="Oslo")])
    with store.session() as s:
        assert state.catalogue(s, max_age=0.0) is first  # stale, but answered at once
    for thread in threading.enumerate():
        if thread.name == "matchwise-reload-catalogue":
            thread.join(timeout=30)
    with store.session() as s:
        fresh = state.catalogue(s)
    assert fresh is not first
    assert state.trims == (1 if sys.platform.startswith("linux") else 0)  # freed heap back
    row = fresh.position["brand-new"]
    assert fresh.tags[row] == frozenset({"jazz"}) and fresh.city_lc[row] == "oslo"
    assert np.isnat(fresh.starts[row])
    starts = fresh.starts[~np.isnat(fresh.starts)]
    assert len(starts) and starts.dtype == np.dtype("datetime64[ns]")
    with store.session() as s:
        from matchwise.db import queries

        frame = queries.items_frame(s, only_active=True).dropna(subset=["starts_at"])
    some = frame.iloc[0]
    expected = pd.Timestamp(some["starts_at"]).tz_convert("UTC").tz_localize(None)
    assert fresh.starts[fresh.position[some["id"]]] == np.datetime64(expected, "ns")


def test_a_new_version_loads_in_the_background_while_the_old_one_serves(
    store: Runtime,
) -> None:
    """A deployment (activation by another process) costs no request a model load."""
    import threading

    warm = _user_with(store, 5, 20)
    first = train_model(store, "ease", domain="items", activate="always")
    state = serving_state(store)
    state.check_seconds = 0.0
    assert _serve(store, warm).model_version == first.version
    second = train_model(store, "ease", domain="items", activate="never", flags={"l2": 50.0})
    with store.session() as s:  # another process activates it: no invalidate() here
        registry.activate_version(s, registry.ArtifactStore(store.settings.artifact_root),
                                  second.registry_id)  # fmt: skip
    state._checked.clear()
    state._switch_now.clear()
    assert _serve(store, warm).model_version == first.version  # answered at once, old model
    for thread in threading.enumerate():
        if thread.name.startswith("matchwise-load-ease-"):
            thread.join(timeout=60)
    assert _serve(store, warm).model_version == second.version


def test_the_api_loads_active_models_before_it_reports_ready(store: Runtime) -> None:
    from fastapi.testclient import TestClient

    from matchwise.api import create_app

    trained = train_model(store, "ease", domain="items", activate="always")
    reset_serving_state(store)  # a fresh process
    with TestClient(create_app(runtime=store)) as client:
        deadline = time.monotonic() + 60  # the warm-up runs in the background
        while client.get("/readyz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        loaded = serving_state(store)._models.get("ease")
        assert loaded is not None and loaded.version == trained.version
    cold = replace(store, settings=store.settings.model_copy(update={"warm_up_on_start": False}))
    with TestClient(create_app(runtime=cold)):
        assert "ease" not in serving_state(cold)._models
