"""The contract every Recommender passes, plus a few model-specific checks.

To add a model, subclass :class:`ModelContract` and implement ``make_model`` with small,
fast hyperparameters: here, or in a sibling module with ``from test_contract import
ModelContract`` (pytest's default import mode puts this folder on ``sys.path``; import
only the mixin, or the imported ``Test*`` classes run twice). Override ``planted`` when
the model cannot solve the block-diagonal fixture by design (as popularity does), or
``min_planted_share`` when it is stochastic. Pytest collects the ``Test*`` subclasses,
not the mixin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.ease import EASERecommender
from matchwise.models.peers import ImplicitALSRecommender, ImplicitBPRRecommender
from matchwise.models.popularity import PopularityRecommender


def _interaction_set(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> InteractionSet:
    users, items = (np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True))
    return InteractionSet(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        users=users,
        items=items,
        labels=np.ones(len(users), dtype=np.float32),
    )


def block_diagonal(
    n_blocks: int = 4, users_per_block: int = 8, items_per_block: int = 6
) -> tuple[InteractionSet, np.ndarray]:
    """Users in block b liked every item of block b but one (the withheld entry).

    The withheld item is the only unseen item that co-occurs with the user's history, so
    any collaborative model must rank it first. Returns the training set and, per user,
    the withheld item index.
    """
    pairs: list[tuple[int, int]] = []
    withheld = np.empty(n_blocks * users_per_block, dtype=np.int64)
    for block in range(n_blocks):
        for offset in range(users_per_block):
            user = block * users_per_block + offset
            missing = block * items_per_block + offset % items_per_block
            withheld[user] = missing
            items = range(block * items_per_block, (block + 1) * items_per_block)
            pairs += [(user, item) for item in items if item != missing]
    return _interaction_set(pairs, len(withheld), n_blocks * items_per_block), withheld


def staircase(n_users: int = 6, n_items: int = 4) -> tuple[InteractionSet, np.ndarray]:
    """User u has seen items 0..u-1; item j is seen by ``n_users - 1 - j`` users.

    The most popular unseen item of user u is u; users who have seen everything get -1.
    """
    pairs = [(u, j) for u in range(n_users) for j in range(min(u, n_items))]
    expected = np.array([u if u < n_items else -1 for u in range(n_users)])
    return _interaction_set(pairs, n_users, n_items), expected


class ModelContract:
    """Mixin: the behaviour every Recommender must show. Subclass with ``Test...``."""

    #: share of users whose planted answer must come first (1.0 for deterministic models)
    min_planted_share: ClassVar[float] = 1.0

    def make_model(self) -> Recommender:
        raise NotImplementedError

    def planted(self) -> tuple[InteractionSet, np.ndarray]:
        """Training data and each user's known best unseen item (-1: no expectation)."""
        return block_diagonal()

    @pytest.fixture
    def fitted(self) -> tuple[Recommender, InteractionSet, np.ndarray]:
        train, expected = self.planted()
        model = self.make_model()
        assert model.fit(train) is model
        return model, train, expected

    def test_planted_answer_comes_first(self, fitted) -> None:
        model, train, expected = fitted
        users = np.flatnonzero(expected >= 0)
        top, _ = model.recommend(users, k=1, exclude=train.to_csr())
        share = float((top[:, 0] == expected[users]).mean())
        assert share >= self.min_planted_share, f"planted answer first for {share:.0%} of users"

    def test_score_shape(self, fitted) -> None:
        model, train, _ = fitted
        scores = model.score(np.array([0, 1, 2]))
        assert scores.shape == (3, train.n_items)
        assert np.isfinite(scores).all()

    def test_recommend_excludes_seen_items(self, fitted) -> None:
        model, train, _ = fitted
        seen = train.to_csr()
        unseen = train.n_items - np.diff(seen.indptr)
        users = np.flatnonzero(unseen > 0)
        k = int(unseen[users].min())
        top, scores = model.recommend(users, k=k, exclude=seen)
        assert top.shape == (len(users), k)
        assert np.isfinite(scores).all()
        assert not np.take_along_axis(seen[users].toarray() > 0, top, axis=1).any()
        assert (np.diff(scores, axis=1) <= 0).all()  # best first

    def test_save_load_gives_identical_scores(self, fitted, tmp_path: Path) -> None:
        model, train, _ = fitted
        model.version = "v-test"
        folder = model.save(tmp_path / "model")
        loaded = type(model).load(folder)
        users = np.arange(train.n_users)
        np.testing.assert_array_equal(loaded.score(users), model.score(users))
        assert loaded.version == "v-test"
        assert loaded.get_params() == model.get_params()

    def test_load_missing_folder_raises(self, tmp_path: Path) -> None:
        with pytest.raises(ArtifactError):
            type(self.make_model()).load(tmp_path / "nowhere")

    def test_load_corrupt_state_raises(self, fitted, tmp_path: Path) -> None:
        model, _, _ = fitted
        folder = model.save(tmp_path / "model")
        state_files = [p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"]
        assert state_files, "the model saved nothing besides its manifest"
        for path in state_files:
            path.write_bytes(b"not a model")
        with pytest.raises(ArtifactError):
            type(model).load(folder)

    def test_load_missing_state_raises(self, fitted, tmp_path: Path) -> None:
        model, _, _ = fitted
        folder = model.save(tmp_path / "model")
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "manifest.json":
                path.unlink()
        with pytest.raises(ArtifactError):
            type(model).load(folder)

    def test_load_corrupt_manifest_raises(self, fitted, tmp_path: Path) -> None:
        model, _, _ = fitted
        folder = model.save(tmp_path / "model")
        (folder / "manifest.json").write_text("{not json")
        with pytest.raises(ArtifactError):
            type(model).load(folder)
        (folder / "manifest.json").write_text(json.dumps({"model_type": "something_else"}))
        with pytest.raises(ArtifactError):
            type(model).load(folder)

    def test_score_before_fit_raises(self) -> None:
        model = self.make_model()
        with pytest.raises(NotFitted):
            model.score(np.array([0]))
        with pytest.raises(NotFitted):
            model.recommend(np.array([0]))

    def test_unknown_user_index_is_refused(self, fitted) -> None:
        model, train, _ = fitted
        with pytest.raises(InvalidInput):
            model.score(np.array([train.n_users]))


# --- the models that join the contract -------------------------------------------------------
class TestPopularity(ModelContract):
    def make_model(self) -> Recommender:
        return PopularityRecommender()

    def planted(self) -> tuple[InteractionSet, np.ndarray]:
        return staircase()


class TestEASE(ModelContract):
    def make_model(self) -> Recommender:
        return EASERecommender(l2=1.0)

    def test_matches_closed_form(self) -> None:
        train, _ = block_diagonal(2, 3, 3)
        X = train.to_csr().toarray().astype(np.float64)
        P = np.linalg.inv(X.T @ X + 10.0 * np.eye(X.shape[1]))
        B = -P / np.diag(P)
        np.fill_diagonal(B, 0.0)
        model = EASERecommender(l2=10.0).fit(train)
        np.testing.assert_allclose(model.score(np.arange(train.n_users)), X @ B, atol=1e-5)
        np.testing.assert_allclose(model.score_history(X[:2]), (X @ B)[:2], atol=1e-5)

    def test_refuses_large_catalogue(self) -> None:
        train, _ = block_diagonal()
        with pytest.raises(InvalidInput, match="max_items"):
            EASERecommender(max_items=train.n_items - 1).fit(train)


class TestImplicitALS(ModelContract):
    def make_model(self) -> Recommender:
        return ImplicitALSRecommender(factors=8, regularization=0.01, iterations=15, num_threads=1)


class TestImplicitBPR(ModelContract):
    def make_model(self) -> Recommender:
        return ImplicitBPRRecommender(
            factors=8, learning_rate=0.05, regularization=0.001, iterations=300
        )


# --- hybrid (generators + LightGBM ranker) and seed 004's logistic model ----------------------
class TestHybrid(ModelContract):
    def make_model(self) -> Recommender:
        from matchwise.models.hybrid import HybridRecommender

        return HybridRecommender(
            generators=["ease", "popularity"], ease_l2=1.0, ranker={"n_estimators": 50}
        )


class TestLogistic(ModelContract):
    def make_model(self) -> Recommender:
        from matchwise.models.logistic import LogisticRecommender

        return LogisticRecommender(epochs=3)

    def planted(self) -> tuple[InteractionSet, np.ndarray]:
        """Block-diagonal with one tag per block: the logistic model has no item-item
        signal, so the block shows through the items' tags (seed 004's tag overlap)."""
        import pandas as pd

        train, withheld = block_diagonal()
        tags = [[f"block{i // (train.n_items // 4)}"] for i in range(train.n_items)]
        train.item_features = pd.DataFrame({"id": train.item_ids, "tags": tags})
        return train, withheld
