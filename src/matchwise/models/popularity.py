"""Most-popular baseline: every user gets the items with the most positive interactions.

The floor any personalised model must beat, and the fallback for users with no history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.models.base import InteractionSet, Recommender

STATE = "popularity.npz"


class PopularityRecommender(Recommender):
    """Scores each item by its count of positive interactions (or their summed weights).

    Parameters
    ----------
    use_weights:
        Sum interaction ``weights`` instead of counting positives.
    """

    model_type = "popularity"

    def __init__(self, use_weights: bool = False) -> None:
        super().__init__()
        self.use_weights = use_weights
        self.item_scores_: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"use_weights": self.use_weights}

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        positive = train.labels > 0
        weights = (
            train.weights[positive] if self.use_weights and train.weights is not None else None
        )
        counts = np.bincount(train.items[positive], weights=weights, minlength=train.n_items)
        self.item_scores_ = counts.astype(np.float32)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.training_metrics = {"positives": int(positive.sum())}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """The same popularity row for every user (a fresh array the caller may modify)."""
        self._check_fitted()
        assert self.item_scores_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= (self.n_users_ or 0)):
            raise InvalidInput(f"user index out of range [0, {self.n_users_})")
        return np.tile(self.item_scores_, (len(users), 1))

    def _save_state(self, folder: Path) -> None:
        assert self.item_scores_ is not None
        np.savez(folder / STATE, item_scores=self.item_scores_)

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE, allow_pickle=False) as state:
            scores = state["item_scores"]
        if scores.ndim != 1 or len(scores) != self.n_items_:
            raise ArtifactError(f"{folder / STATE} does not match the manifest's item count")
        self.item_scores_ = scores.astype(np.float32)
