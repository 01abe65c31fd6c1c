"""Seed 004's logistic model: learns from side features, flags matter, weights persist."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.actions import merge_action_table
from matchwise.data.dataset import label_interactions
from matchwise.data.splits import temporal_split
from matchwise.data.synthetic import generate_items
from matchwise.errors import ArtifactError, InvalidInput
from matchwise.ingest.bulk import write_bundle
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet
from matchwise.models.logistic import FEATURES, WEIGHTS, LogisticRecommender
from matchwise.models.popularity import PopularityRecommender
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.dataset import build_dataset

TABLE = merge_action_table(None)


def bundle_sets(seed: int = 3, **sizes: int) -> tuple[InteractionSet, InteractionSet]:
    """Synthetic events straight from the bundle frames: labelled, time-split per user."""
    bundle = generate_items(**{"n_users": 150, "n_items": 60, "n_interactions": 4000, **sizes},
                            seed=seed)  # fmt: skip
    labelled = label_interactions(bundle.interactions, TABLE)
    seconds = (labelled["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    labelled = labelled.assign(timestamp=seconds)
    train, valid, _ = temporal_split(labelled)
    valid = valid[valid["positive"]]
    kwargs = {"user_features": bundle.users, "item_features": bundle.items}
    users, items = bundle.users["id"].to_numpy(), bundle.items["id"].to_numpy()
    return (
        InteractionSet.from_frame(train, users, items, **kwargs),
        InteractionSet.from_frame(valid, users, items, **kwargs),
    )


@pytest.fixture(scope="module")
def events() -> tuple[InteractionSet, InteractionSet]:
    return bundle_sets()


def test_beats_popularity_on_synthetic_items_from_the_store(sqlite_url: str) -> None:
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    bundle = generate_items(n_users=400, n_items=120, n_interactions=12_000, seed=1)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    with runtime.session() as session:
        dataset = build_dataset(session, TABLE, runtime.settings.hash_secret)
    train, valid, _ = dataset.interaction_sets()
    logistic = LogisticRecommender().fit(train, valid)
    popularity = PopularityRecommender().fit(train)
    ours = evaluate_full_ranking(logistic, train, valid)["ndcg@10"]
    baseline = evaluate_full_ranking(popularity, train, valid)["ndcg@10"]
    assert ours > baseline + 0.1, (ours, baseline)
    assert logistic.training_metrics["validation"]["ndcg@10"] == pytest.approx(ours, abs=1e-4)
    weights = logistic.training_metrics["weights"]
    assert weights["tag_stated_overlap"] > 0 and weights["category_share"] > 0


def test_learns_positive_weights_for_the_planted_causes(events) -> None:
    train, valid = events
    model = LogisticRecommender().fit(train, valid)
    weights = model.training_metrics["weights"]
    # the generator's utility rises with interests, category affinity, city, popularity
    for name in ("tag_stated_overlap", "category_share", "city_match", "item_log_pop"):
        assert weights[name] > 0, (name, weights)
    assert len(model.training_metrics["history"]) == 6
    assert model.feature_names == list(FEATURES)


def test_flags_change_the_training(events) -> None:
    train, _ = events
    base = LogisticRecommender().fit(train).weights_
    for flags in ({"epochs": 1}, {"lr": 0.05}, {"l2": 0.5}):
        other = LogisticRecommender(**flags).fit(train).weights_
        assert not np.allclose(base, other), flags
    strong = LogisticRecommender(l2=1.0).fit(train).weights_
    assert np.linalg.norm(strong) < np.linalg.norm(base)  # more L2, smaller weights
    again = LogisticRecommender().fit(train).weights_
    np.testing.assert_array_equal(base, again)  # seeded: same data and flags, same weights


def test_weights_and_feature_names_are_persisted(events, tmp_path: Path) -> None:
    train, _ = events
    model = LogisticRecommender(epochs=2).fit(train)
    folder = model.save(tmp_path / "logistic")
    state = json.loads((folder / WEIGHTS).read_text())
    assert state["feature_names"] == list(FEATURES)
    np.testing.assert_allclose(state["weights"], model.weights_, rtol=1e-6)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["feature_names"] == list(FEATURES)
    assert manifest["params"]["epochs"] == 2
    loaded = LogisticRecommender.load(folder)
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    state["feature_names"] = ["something", "else"]
    (folder / WEIGHTS).write_text(json.dumps(state))
    with pytest.raises(ArtifactError, match="features"):
        LogisticRecommender.load(folder)


def test_missing_side_columns_leave_features_at_zero(events) -> None:
    train, _ = events
    bare = train.subset(np.ones(len(train), dtype=bool))
    bare.user_features = bare.item_features = None
    model = LogisticRecommender(epochs=2).fit(bare)
    X = model.pair_features(np.zeros(5, dtype=np.int64), np.arange(5))
    zero = [FEATURES.index(n) for n in ("tag_stated_overlap", "city_match", "starts_soon")]
    assert (X[:, zero] == 0).all()
    assert np.isfinite(model.score(np.arange(3))).all()


def test_start_time_features(events) -> None:
    train, _ = events
    model = LogisticRecommender(epochs=1).fit(train)
    X = model.pair_features(np.zeros(train.n_items, dtype=np.int64), np.arange(train.n_items))
    upcoming = X[:, FEATURES.index("starts_upcoming")] > 0
    assert upcoming.any() and (~upcoming).any()
    soon = X[:, FEATURES.index("starts_soon")]
    assert ((soon > 0) == upcoming).all() and soon.max() <= 1
    assert (X[upcoming, FEATURES.index("started_days_ago")] == 0).all()


def test_bad_input_is_refused(events) -> None:
    train, _ = events
    with pytest.raises(InvalidInput, match="no positives"):
        LogisticRecommender().fit(train.subset(train.labels < 0.5))
    for flags in ({"epochs": 0}, {"lr": 0.0}, {"l2": -1.0}):
        with pytest.raises(InvalidInput):
            LogisticRecommender(**flags)
