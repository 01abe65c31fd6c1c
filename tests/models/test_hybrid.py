"""The hybrid pipeline: generators + LightGBM re-ranker, as one Recommender."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.bench.movielens import HYBRID
from matchwise.data.splits import random_split
from matchwise.errors import ArtifactError, InvalidInput
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet
from matchwise.models.ease import EASERecommender
from matchwise.models.hybrid import HybridRecommender
from matchwise.models.item_knn import ItemKNNRecommender
from matchwise.models.popularity import PopularityRecommender

FAST = {"generators": ["ease", "popularity"], "ease_l2": 50.0, "ranker": {"n_estimators": 100}}


def planted(seed: int = 0, n_users: int = 200, n_items: int = 120, n_cats: int = 6):
    """Each user draws 20 items by popularity x8 in their favourite category.

    Neither EASE (co-occurrence) nor popularity sees both causes; the ranker gets both
    generators' scores plus each item's category share in the user's history.
    """
    rng = np.random.default_rng(seed)
    category = rng.integers(0, n_cats, n_items)
    popularity = rng.zipf(1.5, n_items).clip(1, 50).astype(float)
    favourite = rng.integers(0, n_cats, n_users)
    rows = []
    for user in range(n_users):
        weight = popularity * np.where(category == favourite[user], 8.0, 1.0)
        chosen = rng.choice(n_items, 20, replace=False, p=weight / weight.sum())
        rows += [(user, item) for item in chosen]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(label=1.0)
    items = pd.DataFrame({"id": np.arange(n_items), "category": [f"c{c}" for c in category]})
    parts = random_split(frame, (0.8, 0.1, 0.1), seed=seed)
    return [
        InteractionSet.from_frame(p, np.arange(n_users), np.arange(n_items), item_features=items)
        for p in parts
    ]


@pytest.fixture(scope="module")
def data() -> list[InteractionSet]:
    return planted()


@pytest.fixture(scope="module")
def hybrid(data) -> HybridRecommender:
    train, _, _ = data
    return HybridRecommender(**FAST).fit(train)


def test_beats_the_best_generator(data, hybrid: HybridRecommender) -> None:
    train, valid, _ = data
    generators = [EASERecommender(l2=50.0).fit(train), PopularityRecommender().fit(train)]
    best = max(evaluate_full_ranking(m, train, valid)["ndcg@10"] for m in generators)
    ours = evaluate_full_ranking(hybrid, train, valid)["ndcg@10"]
    assert ours > best + 0.02, (ours, best)
    assert "category_share" in hybrid.feature_names
    assert hybrid.training_metrics["backend"] == "onnx"


def test_scores_put_candidates_above_everything_else(data, hybrid: HybridRecommender) -> None:
    train, _, _ = data
    scores = hybrid.score(np.arange(10))
    assert np.isfinite(scores).all()
    candidates = scores > 0
    assert ((scores[candidates] > 1) & (scores[candidates] <= 2)).all()
    assert ((scores[~candidates] >= -2) & (scores[~candidates] < -1)).all()
    seen = train.to_csr()[np.arange(10)].toarray() > 0
    assert not (candidates & seen).any()  # a seen item is never a candidate


def test_save_load_round_trip(data, hybrid: HybridRecommender, tmp_path: Path) -> None:
    train, _, _ = data
    folder = hybrid.save(tmp_path / "hybrid")
    for name in ("generators/ease", "generators/popularity", "ranker/model.onnx",
                 "ranker/model.txt", "ranker/ranker.json", "hybrid.npz"):  # fmt: skip
        assert (folder / name).exists(), name
    loaded = HybridRecommender.load(folder)
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(loaded.score(users), hybrid.score(users))
    assert loaded.feature_names == hybrid.feature_names
    (folder / "ranker" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="model.onnx"):
        HybridRecommender.load(folder)


def test_validation_labels_then_refit_on_train_and_validation(data) -> None:
    train, valid, test = data
    with pytest.raises(InvalidInput, match="validation"):
        HybridRecommender(**FAST, label_source="validation").fit(train)
    model = HybridRecommender(**FAST, label_source="validation", refit=True).fit(train, valid)
    # the final generators have seen validation (never test): validation items are history
    assert model.seen_ is not None
    assert (model.seen_.multiply(valid.to_csr()) > 0).sum() == len(valid)
    assert (model.seen_.multiply(test.to_csr()) > 0).sum() == 0
    result = evaluate_full_ranking(model, train, test, exclude=valid)["ndcg@10"]
    assert result > 0.2


def test_several_folds_and_item_knn(data) -> None:
    train, valid, _ = data
    model = HybridRecommender(
        **{**FAST, "generators": ["ease", "item_knn"]}, folds=2, n_candidates=30
    ).fit(train)
    assert model.training_metrics["ranker_groups"] > train.n_users  # two folds of groups
    assert any(name.startswith("item_knn_") for name in model.feature_names)
    assert evaluate_full_ranking(model, train, valid)["ndcg@10"] > 0.3


def test_validation_labels_without_refit_as_benchmarked(data, tmp_path: Path) -> None:
    """The benchmark's hybrid: RP3beta and item-kNN generators with their own parameters,
    the ranker learnt from validation positives, generators fitted on train only."""
    train, valid, test = data
    model = HybridRecommender(
        **{**FAST, "generators": ["ease", "rp3beta", "item_knn"]},
        rp3beta={"alpha": 1.0, "beta": 0.5, "k": 0}, item_knn={"k": 30, "shrink": 0.0},
        label_source="validation", refit=False,
    ).fit(train, valid)  # fmt: skip
    assert model.generators_["rp3beta"].get_params()["beta"] == 0.5
    assert model.generators_["item_knn"].get_params()["k"] == 30
    assert {"rp3beta_rank", "item_knn_score"} <= set(model.feature_names)
    # no refit: the generators' history is train alone, validation only labelled the ranker
    assert model.seen_ is not None
    assert (model.seen_.multiply(valid.to_csr()) > 0).sum() == 0
    assert model.generators_["ease"].X_.nnz == int((train.to_csr() > 0).sum())
    ease = EASERecommender(l2=50.0).fit(train)
    ours = evaluate_full_ranking(model, train, test, exclude=valid)["ndcg@10"]
    assert ours > evaluate_full_ranking(ease, train, test, exclude=valid)["ndcg@10"]
    loaded = HybridRecommender.load(model.save(tmp_path / "hybrid"))
    assert loaded.get_params() == model.get_params()
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))


def test_item_knn_generator(data) -> None:
    train, valid, _ = data
    knn = ItemKNNRecommender(k=20).fit(train)
    assert knn.S_ is not None and (knn.S_.getnnz(axis=1) <= 20).all()
    assert evaluate_full_ranking(knn, train, valid)["ndcg@10"] > 0.2


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="generators"):
        HybridRecommender(generators=["ease", "magic"])
    with pytest.raises(InvalidInput, match="label_source"):
        HybridRecommender(label_source="test")
    with pytest.raises(InvalidInput, match="holdout"):
        HybridRecommender(holdout=1.5)
    with pytest.raises(InvalidInput, match="blend"):
        HybridRecommender(blend=-1.0)


def test_no_positives_is_a_clear_error(data) -> None:
    train, _, _ = data
    empty = train.subset(np.zeros(len(train), dtype=bool))
    with pytest.raises(InvalidInput, match="no positives"):
        HybridRecommender(**FAST).fit(empty)


@pytest.mark.slow
def test_two_tower_as_a_generator(data, tmp_path: Path) -> None:
    train, valid, _ = data
    tower = {"epochs": 3, "hidden": [32], "embedding_dim": 16, "id_dim": 16, "device": "cpu"}
    model = HybridRecommender(
        generators=["ease", "two_tower"], ease_l2=50.0, ranker={"n_estimators": 50},
        two_tower=tower,
    ).fit(train)  # fmt: skip
    assert "two_tower_rank" in model.feature_names
    assert evaluate_full_ranking(model, train, valid)["ndcg@10"] > 0.3
    loaded = HybridRecommender.load(model.save(tmp_path / "hybrid"))
    users = np.arange(20)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))


def test_people_domain_adds_reciprocity_and_demographics() -> None:
    rng = np.random.default_rng(4)
    n = 80
    age = rng.integers(20, 50, n)
    # people like others of a similar age, and liking tends to be mutual
    close = np.abs(age[:, None] - age[None, :]) <= 5
    likes = close & (rng.random((n, n)) < 0.5)
    likes = likes | (likes.T & (rng.random((n, n)) < 0.7))
    np.fill_diagonal(likes, False)
    users, items = np.nonzero(likes)
    ids = np.array([f"p{k}" for k in range(n)])
    data = InteractionSet(
        user_ids=ids, item_ids=ids, users=users, items=items,
        labels=np.ones(len(users), np.float32),
        user_features=pd.DataFrame({"id": ids, "age": age, "elo": rng.normal(1200, 50, n)}),
        meta={"domain": "people"},
    )  # fmt: skip
    train, valid, _ = random_split(data, (0.8, 0.1, 0.1), seed=1)
    model = HybridRecommender(**FAST).fit(train)
    assert {"reciprocal", "liked_back", "age_gap", "item_elo"} <= set(model.feature_names)
    assert evaluate_full_ranking(model, train, valid)["ndcg@10"] > 0.1


def test_the_defaults_are_the_benchmarked_configuration(data) -> None:
    """Issue 17: `matchwise train hybrid` fits what RESULTS.md measures (HYBRID); before,
    the defaults were three generators, holdout labels, refit and a rank blend."""
    defaults = HybridRecommender().get_params()
    for key, value in HYBRID.items():
        if key in ("label_source", "refit"):
            continue  # "auto" resolves to these below
        if isinstance(value, dict):
            assert {k: defaults[key][k] for k in value} == value, key
        else:
            assert defaults[key] == value, key
    train, valid, _ = data
    model = HybridRecommender(**{**FAST, "generators": ["ease", "rp3beta"]}).fit(train, valid)
    assert model.training_metrics["label_source"] == HYBRID["label_source"]
    assert model.training_metrics["refit"] is HYBRID["refit"]
    assert model.seen_ is not None and (model.seen_.multiply(valid.to_csr()) > 0).sum() == 0


def test_without_validation_the_labels_are_hidden_training_positives(data) -> None:
    train, _, _ = data
    model = HybridRecommender(**FAST).fit(train)
    assert model.training_metrics["label_source"] == "holdout"
    assert model.training_metrics["refit"] is True  # served generators see all of train
    assert model.seen_ is not None and model.seen_.sum() == len(train)


def test_the_ranker_learns_from_a_seeded_sample_of_users_when_there_are_many(data) -> None:
    train, valid, _ = data
    labelled = int((np.diff(valid.to_csr(positive_only=True).indptr) > 0).sum())
    params = {**FAST, "ranker": {"n_estimators": 20}}
    every = HybridRecommender(**params).fit(train, valid)
    assert every.training_metrics["ranker_groups"] == labelled  # below the cap: all of them
    sample = HybridRecommender(**params, ranker_users=50).fit(train, valid)
    again = HybridRecommender(**params, ranker_users=50).fit(train, valid)
    assert sample.training_metrics["ranker_groups"] == 50 < labelled
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(sample.score(users), again.score(users))
    with pytest.raises(InvalidInput, match="ranker_users"):
        HybridRecommender(ranker_users=0)
