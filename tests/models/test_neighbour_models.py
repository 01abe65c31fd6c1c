"""Item-kNN and RP3beta: the model contract (fit, score, save/load), and each beats
popularity on a slice of MovieLens 100K under the benchmark's protocol."""

from __future__ import annotations

import numpy as np
import pytest

from matchwise.bench.movielens import prepare_protocol
from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.errors import InvalidInput
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import model_class
from matchwise.models.item_knn import ItemKNNRecommender
from matchwise.models.popularity import PopularityRecommender
from matchwise.models.rp3beta import RP3betaRecommender
from tests.conftest import MOVIELENS_100K
from tests.models.test_contract import ModelContract, block_diagonal


class TestItemKNN(ModelContract):
    def make_model(self) -> Recommender:
        return ItemKNNRecommender(k=5, shrink=1.0)

    def test_keeps_k_neighbours_and_cosine(self) -> None:
        train, _ = block_diagonal()
        model = ItemKNNRecommender(k=3, shrink=0.0).fit(train)
        assert model.S_ is not None and (model.S_.getnnz(axis=1) <= 3).all()
        model = ItemKNNRecommender(k=train.n_items, shrink=0.0).fit(train)
        assert model.S_ is not None
        X = train.to_csr().toarray()
        counts = X.sum(axis=0)
        co = X[:, 0] @ X[:, 1]
        assert model.S_[0, 1] == pytest.approx(co / np.sqrt(counts[0] * counts[1]), rel=1e-5)


class TestRP3beta(ModelContract):
    def make_model(self) -> Recommender:
        return RP3betaRecommender(alpha=1.0, beta=0.3, k=10)

    def test_matches_the_walk(self) -> None:
        """beta=0, alpha=1, all neighbours: W is the plain 2-step item -> user -> item walk."""
        train, _ = block_diagonal(2, 3, 3)
        X = train.to_csr().toarray().astype(np.float64)
        p_ui = X / X.sum(axis=1, keepdims=True)
        p_iu = X.T / X.sum(axis=0)[:, None]
        W = p_iu @ p_ui
        np.fill_diagonal(W, 0.0)
        model = RP3betaRecommender(alpha=1.0, beta=0.0, k=0).fit(train)
        np.testing.assert_allclose(model.score(np.arange(train.n_users)), X @ W, atol=1e-5)

    def test_a_full_W_scores_dense_with_the_same_sums(self) -> None:
        """k=0 keeps every neighbour: scored as a dense matrix (issue 16), bit for bit the
        sparse product's figures; a pruned W stays sparse."""
        train, _ = block_diagonal(2, 3, 3)
        model = RP3betaRecommender(alpha=0.8, beta=0.5, k=0).fit(train)
        assert model._dense_W is not None and model.W_ is not None and model.X_ is not None
        users = np.arange(train.n_users)
        sparse = (model.X_[users] @ model.W_).toarray()
        np.testing.assert_array_equal(model.score(users), sparse)
        assert RP3betaRecommender(k=1).fit(train)._dense_W is None

    def test_beta_penalises_popular_items(self) -> None:
        train, _ = block_diagonal()
        plain = RP3betaRecommender(beta=0.0, k=0).fit(train)
        penalised = RP3betaRecommender(beta=1.0, k=0).fit(train)
        assert plain.W_ is not None and penalised.W_ is not None
        assert penalised.W_.sum() < plain.W_.sum()


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (ItemKNNRecommender, {"k": 0}, "k"),
        (ItemKNNRecommender, {"shrink": -1.0}, "shrink"),
        (RP3betaRecommender, {"alpha": 0.0}, "alpha"),
        (RP3betaRecommender, {"beta": -0.1}, "beta"),
        (RP3betaRecommender, {"k": -1}, "k"),
    ],
)
def test_bad_parameters_are_refused(cls: type, params: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        cls(**params)


def test_large_catalogues_are_refused() -> None:
    train, _ = block_diagonal()
    for cls in (ItemKNNRecommender, RP3betaRecommender):
        with pytest.raises(InvalidInput, match="max_items"):
            cls(max_items=train.n_items - 1).fit(train)


def test_both_are_in_the_catalogue() -> None:
    assert model_class("item_knn") is ItemKNNRecommender
    assert model_class("rp3beta") is RP3betaRecommender


@pytest.fixture(scope="module")
def movielens_slice() -> tuple[InteractionSet, InteractionSet, InteractionSet]:
    """The first 300 users of MovieLens 100K under the RecBole protocol (seed 2020)."""
    if not MOVIELENS_100K.is_dir():
        pytest.skip("MovieLens 100K is not in SHARED_DATA")
    frame = ratings_frame(read_movielens(MOVIELENS_100K))
    frame = frame.loc[frame["user_id"].astype(int) <= 300]
    return prepare_protocol(frame, "recbole", seed=2020)


@pytest.mark.parametrize(
    "model", [ItemKNNRecommender(k=100, shrink=10.0), RP3betaRecommender(alpha=0.8, beta=0.3)]
)
def test_beats_popularity_on_movielens(movielens_slice, model: Recommender) -> None:
    train, valid, test = movielens_slice
    popularity = PopularityRecommender().fit(train)
    floor = evaluate_full_ranking(popularity, train, test, exclude=valid)["ndcg@10"]
    ours = evaluate_full_ranking(model.fit(train), train, test, exclude=valid)["ndcg@10"]
    assert ours > floor * 1.3, (ours, floor)
