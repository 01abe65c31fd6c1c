"""Serving's people ranking reads the pairwise model when it is trained and active: the
model the Speed Dating benchmark measures is the one users get (both stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matchwise import registry
from matchwise.data.speed_dating import read_speed_dating
from matchwise.data.synthetic import generate_people
from matchwise.hashing import hash_id
from matchwise.ingest.bulk import write_bundle
from matchwise.models.artifacts import load_trained
from matchwise.registry import ArtifactStore
from matchwise.runtime import Runtime
from matchwise.serve import people as serve_people
from matchwise.serve.recommend import recommend
from matchwise.serve.state import serving_state
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.conftest import FIXTURES


def test_the_people_route_serves_the_pairwise_model(db_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=200, n_swipes=5000, seed=8)  # as the reciprocal test
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    reciprocal = train_model(runtime, "reciprocal", domain="people", activate="always")
    pairwise = train_model(runtime, "pairwise", domain="people", activate="always")
    assert pairwise.test["pairwise"]["ndcg@10"] > 0
    user = str(bundle.interactions["user_id"].value_counts().index[0])
    with runtime.session() as s:
        served = recommend(runtime, s, user, limit=10, kind="user", use_cache=False)
        # both people models are active: the pairwise one answers
        assert served.route == "hot" and served.model_version == pairwise.version
        assert served.model_version != reciprocal.version
        models = serving_state(runtime).serving(s, "people")
        cat = serving_state(runtime).people(s, settings.location_cell_km)
    assert {m.model_type for m in models} >= {"pairwise", "reciprocal"}
    # and its scores are the model's own: P(user likes c) from the pairwise model
    ids = np.array([r.candidate_id for r in served.recommendations])
    rows = np.array([cat.position[c] for c in ids])
    signals = serve_people._reciprocal_signals(settings, models, user, cat, rows)
    assert signals is not None and signals[0] == pairwise.version
    # whatever order the active people models come in (not the alphabet's luck)
    reversed_order = serve_people._reciprocal_signals(settings, models[::-1], user, cat, rows)
    assert reversed_order is not None and reversed_order[0] == pairwise.version
    loaded = next(m for m in models if m.model_type == "pairwise")
    row = loaded.user_row(settings.hash_secret, user)
    assert row is not None
    cols = np.array([loaded.trained.item_index[hash_id(settings.hash_secret, c)] for c in ids])
    p_ab, _, _ = loaded.trained.model.score_candidates(row, cols)
    np.testing.assert_allclose(signals[1], p_ab)
    runtime.close()


def test_the_served_pairwise_model_reads_the_stored_survey(db_url: str, tmp_path: Path) -> None:
    """The answers ``matchwise load speed-dating`` stores as profile attributes reach the
    model ``train pairwise`` fits on the store, as they reach it in the benchmark (before
    the training snapshot carried attributes, every answer was missing)."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = read_speed_dating(FIXTURES / "speed_dating_sample.csv")
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    result = train_model(runtime, "pairwise", domain="people", activate="always")
    with runtime.session() as s:
        uri = registry.get_version(s, result.registry_id).uri
    model = load_trained(ArtifactStore(settings.artifact_root).fetch(uri)).model
    profiles = model.profiles_
    assert len(profiles) == len(bundle.users)
    assert np.isfinite(profiles.prefs).all(axis=1).mean() > 0.9  # what each looks for
    assert np.isfinite(profiles.answers).any(axis=1).all()
    runtime.close()
