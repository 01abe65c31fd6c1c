"""Serving's people ranking reads the pairwise model when it is trained and active: the
model the Speed Dating benchmark measures is the one users get (both stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matchwise.data.synthetic import generate_people
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve import people as serve_people
from matchwise.serve.recommend import recommend
from matchwise.serve.state import serving_state
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


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
    assert {m.model_type for m in models} >= {"pairwise", "reciprocal"}
    # and its scores are the model's own: P(user likes c) from the pairwise model
    ids = np.array([r.candidate_id for r in served.recommendations])
    signals = serve_people._reciprocal_signals(settings, models, user, ids)
    assert signals is not None and signals[0] == pairwise.version
    # whatever order the active people models come in (not the alphabet's luck)
    reversed_order = serve_people._reciprocal_signals(settings, models[::-1], user, ids)
    assert reversed_order is not None and reversed_order[0] == pairwise.version
    loaded = next(m for m in models if m.model_type == "pairwise")
    row = loaded.user_row(settings.hash_secret, user)
    assert row is not None
    cols = np.array([loaded.trained.item_index[serve_people.hash_id(settings.hash_secret, c)]
                     for c in ids])  # fmt: skip
    p_ab, _, _ = loaded.trained.model.score_candidates(row, cols)
    np.testing.assert_allclose(signals[1], p_ab)
    runtime.close()
