"""The LightGBM ranker (ONNX agreement, learning, persistence) and the pair-feature builder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.metrics import grouped_ndcg
from matchwise.models.base import InteractionSet
from matchwise.models.ranker import (
    MODEL_ONNX,
    MODEL_TEXT,
    RANKER_MANIFEST,
    FeatureContext,
    LightGBMRanker,
    candidate_features,
    descending_order,
    grouped_ranks,
)


def planted(n_groups: int = 120, size: int = 20, seed: int = 0):
    """Groups of candidates where feature 0 (plus a little noise) decides relevance."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_groups * size, 5)).astype(np.float32)
    noisy = X[:, 0] + 0.3 * rng.normal(size=len(X))
    y = (noisy > np.quantile(noisy, 0.85)).astype(np.float32)
    return X, y, np.full(n_groups, size)


@pytest.fixture(scope="module")
def trained() -> LightGBMRanker:
    X, y, groups = planted()
    return LightGBMRanker(n_estimators=60, learning_rate=0.1, min_data_in_leaf=20).fit(
        X, y, groups, [f"f{k}" for k in range(5)]
    )


def test_onnx_and_lightgbm_scores_agree(trained: LightGBMRanker) -> None:
    assert trained.backend == "onnx"
    X = np.random.default_rng(1).normal(scale=3.0, size=(5000, 5)).astype(np.float32)
    onnx, native = trained.predict_onnx(X), trained.predict_lightgbm(X)
    assert np.abs(onnx - native).max() < 1e-4
    np.testing.assert_array_equal(trained.predict(X), onnx)


@pytest.mark.parametrize("objective", ["binary", "rank_xendcg"])
def test_other_objectives_convert_too(objective: str) -> None:
    X, y, groups = planted(40)
    ranker = LightGBMRanker(n_estimators=20, objective=objective, early_stopping_rounds=0)
    ranker.fit(X, y, groups)
    probe = np.random.default_rng(2).normal(size=(1000, 5)).astype(np.float32)
    assert np.abs(ranker.predict_onnx(probe) - ranker.predict_lightgbm(probe)).max() < 1e-4


def test_learns_the_planted_signal_and_beats_random_order(trained: LightGBMRanker) -> None:
    X, y, groups = planted(seed=7)  # fresh groups
    keys = np.repeat(np.arange(len(groups)), groups)
    learned = grouped_ndcg(keys, trained.predict(X), y, k=5).mean
    shuffled = grouped_ndcg(keys, np.random.default_rng(3).random(len(y)), y, k=5).mean
    assert learned > 0.9 > shuffled + 0.3
    importance = trained.training_metrics["feature_importance"]
    assert max(importance, key=importance.get) == "f0"


def test_save_load_round_trip(trained: LightGBMRanker, tmp_path: Path) -> None:
    folder = trained.save(tmp_path / "ranker")
    assert {p.name for p in folder.iterdir()} == {MODEL_TEXT, MODEL_ONNX, RANKER_MANIFEST}
    manifest = json.loads((folder / RANKER_MANIFEST).read_text())
    assert manifest["feature_names"] == ["f0", "f1", "f2", "f3", "f4"]
    loaded = LightGBMRanker.load(folder)
    X = planted(10, seed=5)[0]
    np.testing.assert_array_equal(loaded.predict(X), trained.predict(X))
    np.testing.assert_allclose(loaded.predict_lightgbm(X), trained.predict_lightgbm(X))
    assert loaded.get_params() == trained.get_params()


@pytest.mark.parametrize("name", [MODEL_TEXT, MODEL_ONNX, RANKER_MANIFEST])
def test_corrupt_or_missing_file_is_an_artifact_error(
    trained: LightGBMRanker, tmp_path: Path, name: str
) -> None:
    folder = trained.save(tmp_path / "ranker")
    (folder / name).write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match=name.split(".")[0]):
        LightGBMRanker.load(folder)
    (folder / name).unlink()
    with pytest.raises(ArtifactError, match=name):
        LightGBMRanker.load(folder)


def test_bad_input_is_refused(trained: LightGBMRanker) -> None:
    X, y, groups = planted(10)
    with pytest.raises(InvalidInput, match="groups"):
        LightGBMRanker().fit(X, y, groups[:-1])
    with pytest.raises(InvalidInput, match="positive"):
        LightGBMRanker().fit(X, np.zeros_like(y), groups)
    with pytest.raises(InvalidInput, match="5 feature columns"):
        trained.predict(X[:, :3])
    with pytest.raises(NotFitted):
        LightGBMRanker().predict(X)
    with pytest.raises(InvalidInput, match="objective"):
        LightGBMRanker(objective="regression")


def test_group_ndcg_by_hand() -> None:
    # group 1: the positive ranked second -> 1/log2(3); group 2: no positive -> skipped
    scores, labels = np.array([3.0, 2.0, 1.0, 5.0, 4.0]), np.array([0, 1, 0, 0, 0])
    value = grouped_ndcg([0, 0, 0, 1, 1], scores, labels).mean
    assert value == pytest.approx(1 / np.log2(3))
    np.testing.assert_array_equal(grouped_ranks(np.array([[0.1, 0.9, 0.5]])), [[2, 0, 1]])


def test_descending_order_is_the_stable_argsort() -> None:
    """The hybrid's rank features sort int keys instead of a stable argsort (issue 16):
    the same order, ties by position, -0.0 tied with 0.0, infinities at the ends."""
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 300)).astype(np.float32)
    scores[:, :120] = np.round(scores[:, :120])  # many ties
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    scores[0, :4] = [-0.0, 0.0, np.inf, np.finfo(np.float32).max]
    scores[1] = 7.0  # one row all tied
    expected = np.argsort(-scores, axis=1, kind="stable")
    np.testing.assert_array_equal(descending_order(scores), expected)
    ranks = grouped_ranks(scores)
    np.testing.assert_array_equal(np.take_along_axis(ranks, expected, axis=1),
                                  np.broadcast_to(np.arange(300), ranks.shape))  # fmt: skip


# --- pair features --------------------------------------------------------------------------
def _events() -> InteractionSet:
    items = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "tags": [["jazz", "live"], ["jazz"], ["python"], None],
            "category": ["music", "music", "tech", "tech"],
            "city": ["Paris", "Berlin", "Paris", None],
            "owner_id": ["o1", "o1", "o2", "o2"],
            "starts_at": pd.to_datetime(["2026-01-01", "2026-01-20", "2025-12-01", None], utc=True),
        }
    )
    users = pd.DataFrame({"id": ["u", "v"], "city": ["Paris", "Rome"], "tags": [["python"], []]})
    day = 86_400
    t0 = int(pd.Timestamp("2026-01-10", tz="UTC").timestamp())
    return InteractionSet(
        user_ids=np.array(["u", "v"]),
        item_ids=np.array(["a", "b", "c", "d"]),
        users=np.array([0, 0, 1, 0]),
        items=np.array([0, 1, 1, 2]),
        labels=np.array([1.0, 1.0, 1.0, 0.4]),  # u viewed c (0.4): a weak past interaction
        timestamps=np.array([t0 - 2 * day, t0 - day, t0, t0 - 3 * day]),
        user_features=users,
        item_features=items,
    )


def test_pair_features_by_hand() -> None:
    context = FeatureContext.from_interactions(_events())
    users = np.array([0])
    rows, cols = np.zeros(4, dtype=np.int64), np.arange(4)
    X, names = candidate_features(context, users, rows, cols)
    f = dict(zip(names, X.T, strict=True))
    # u liked a (jazz, live) and b (jazz): item b's one tag is in both -> 2/1/2 = 1.0
    np.testing.assert_allclose(f["tag_history_overlap"], [0.75, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(f["tag_stated_overlap"], [0, 0, 1, 0])  # u states "python"
    np.testing.assert_allclose(f["category_share"], [1, 1, 0, 0])
    np.testing.assert_allclose(f["city_match"], [1, 0, 1, 0])
    np.testing.assert_allclose(f["owner_affinity"], [1, 1, 0, 0])
    np.testing.assert_allclose(f["past_label"], [0, 0, 0.401, 0], atol=1e-6)
    np.testing.assert_allclose(f["start_days"], [-9, 10, -40, 0])  # reference: 2026-01-10
    np.testing.assert_allclose(f["start_known"], [1, 1, 1, 0])
    np.testing.assert_allclose(f["item_log_pop"], np.log1p([1, 2, 0, 0]))
    np.testing.assert_allclose(f["user_log_history"], np.log1p(2))


def test_leave_one_out_removes_the_pairs_own_contribution() -> None:
    context = FeatureContext.from_interactions(_events())
    X, names = candidate_features(
        context, np.array([0]), np.zeros(2, dtype=np.int64), np.array([0, 1]), exclude_self=True
    )
    f = dict(zip(names, X.T, strict=True))
    # without a itself, u's history is {b}: a shares jazz (1 of its 2 tags)
    np.testing.assert_allclose(f["tag_history_overlap"], [0.5, 1.0])
    np.testing.assert_allclose(f["item_log_pop"], np.log1p([0, 1]))
    np.testing.assert_allclose(f["user_log_history"], np.log1p(1))
    np.testing.assert_allclose(f["owner_affinity"], [1, 1])


def test_generator_features_and_missing_columns() -> None:
    data = _events()
    data.item_features = data.user_features = None  # no side columns: their features vanish
    context = FeatureContext.from_interactions(data)
    scores = np.array([[-np.inf, -np.inf, 2.0, 1.0]], dtype=np.float32)
    X, names = candidate_features(
        context, np.array([0]), np.array([0, 0]), np.array([2, 3]), {"ease": scores}
    )
    f = dict(zip(names, X.T, strict=True))
    assert not {"tag_history_overlap", "city_match", "start_days"} & set(names)
    np.testing.assert_allclose(f["ease_score"], [2, 1])
    np.testing.assert_allclose(f["ease_rank"], np.log1p([0, 1]))
    np.testing.assert_allclose(f["ease_gap"], [0, -1])
    np.testing.assert_allclose(f["ease_z"], [1, -1])
    assert np.isfinite(X).all()


def test_context_round_trips_through_arrays() -> None:
    context = FeatureContext.from_interactions(_events())
    again = FeatureContext.from_arrays(context.to_arrays())
    args = (np.array([0, 1]), np.array([0, 0, 1, 1]), np.array([0, 3, 1, 2]))
    np.testing.assert_array_equal(
        candidate_features(context, *args)[0], candidate_features(again, *args)[0]
    )
    with pytest.raises(ArtifactError):
        FeatureContext.from_arrays({})
