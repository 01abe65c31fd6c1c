"""Item-kNN: cosine item-item neighbours over the binary matrix of positives.

A user's score for an item is the summed similarity of the item to the user's history,
each item keeping its ``k`` nearest neighbours; ``shrink`` damps similarities built on
few co-occurrences. Cheap, and different enough from EASE and ALS to be a useful
candidate generator in the hybrid. One dense ``n_items²`` similarity during the fit, so
the catalogue is capped like EASE's (``max_items``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.models.base import InteractionSet, Recommender

STATE = "item_knn.npz"


class ItemKNNRecommender(Recommender):
    """Cosine item-item neighbours (sparse, top ``k`` per item).

    Parameters
    ----------
    k:
        Neighbours kept per item.
    shrink:
        Added to the cosine's denominator: pairs seen together rarely count less.
    max_items:
        Refuse catalogues larger than this (a dense ``n_items²`` similarity is built).
    """

    model_type: ClassVar[str] = "item_knn"
    serves: ClassVar[frozenset[str]] = frozenset({"warm", "hot"})

    def __init__(self, k: int = 100, shrink: float = 10.0, max_items: int = 20_000) -> None:
        super().__init__()
        if k < 1:
            raise InvalidInput(f"item_knn k must be >= 1, got {k}")
        if shrink < 0:
            raise InvalidInput(f"item_knn shrink must be >= 0, got {shrink}")
        self.k = int(k)
        self.shrink = float(shrink)
        self.max_items = int(max_items)
        self.S_: sp.csr_matrix | None = None
        self.X_: sp.csr_matrix | None = None

    def get_params(self) -> dict[str, Any]:
        return {"k": self.k, "shrink": self.shrink, "max_items": self.max_items}

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        if train.n_items > self.max_items:
            raise InvalidInput(
                f"item_knn builds a dense {train.n_items}x{train.n_items} similarity; the "
                f"catalogue exceeds max_items={self.max_items}"
            )
        X = train.to_csr(positive_only=True)
        X.data[:] = 1.0
        X = sp.csr_matrix(X, dtype=np.float32)
        norms = np.sqrt(np.asarray(X.sum(axis=0)).ravel())
        co = (X.T @ X).toarray().astype(np.float32)
        np.fill_diagonal(co, 0.0)
        S = co / (np.outer(norms, norms) + self.shrink + 1e-12)
        self.S_ = sp.csr_matrix(keep_top_k(S, self.k))
        self.X_ = X
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.training_metrics = {"positives": int(X.nnz), "neighbours": int(self.S_.nnz)}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """``X[users] · Sᵀ``: each item's summed similarity to the user's history."""
        self._check_fitted()
        assert self.S_ is not None and self.X_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= self.X_.shape[0]):
            raise InvalidInput(f"user index out of range [0, {self.X_.shape[0]})")
        return np.asarray((self.X_[users] @ self.S_.T).toarray(), dtype=np.float32)

    def _save_state(self, folder: Path) -> None:
        assert self.S_ is not None and self.X_ is not None
        arrays = {**csr_arrays("S", self.S_), **csr_arrays("X", self.X_)}
        np.savez(folder / STATE, **arrays)  # type: ignore[arg-type]

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE, allow_pickle=False) as state:
            self.S_ = csr_from(state, "S")
            self.X_ = csr_from(state, "X")
        if self.X_.shape != (self.n_users_, self.n_items_) or self.S_.shape != (
            self.n_items_,
            self.n_items_,
        ):
            raise ArtifactError(f"{folder / STATE} does not match the manifest's shape")


def keep_top_k(S: np.ndarray, k: int) -> np.ndarray:
    """``S`` with all but each row's ``k`` largest entries set to 0 (in place)."""
    if k < S.shape[1]:
        cut = np.argpartition(-S, k - 1, axis=1)[:, k:]
        np.put_along_axis(S, cut, 0.0, axis=1)
    return S


def csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as four named arrays for ``np.savez`` (no pickle)."""
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from(state: Any, prefix: str) -> sp.csr_matrix:
    """The CSR matrix :func:`csr_arrays` wrote under ``prefix``."""
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
        shape=tuple(int(v) for v in state[f"{prefix}_shape"]),
    )
