"""EASE (Steck 2019): a closed-form item-item linear autoencoder, a strong full-ranking baseline.

``G = XᵀX + λI``, ``P = G⁻¹``, ``B = -P / diag(P)`` with a zero diagonal, and a user's
scores are ``x_user · B``. One dense ``n_items²`` float32 inverse, so the catalogue size
is capped (``max_items``): 20,000 items is 1.6 GB per matrix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.models.base import InteractionSet, Recommender

log = logging.getLogger(__name__)

STATE = "ease.npz"


class EASERecommender(Recommender):
    """Embarrassingly Shallow AutoEncoder over the binary user x item matrix of positives.

    Parameters
    ----------
    l2:
        The ridge penalty λ on the diagonal of the Gram matrix (larger = smoother).
    max_items:
        Refuse catalogues larger than this: memory and time grow as ``n_items²`` / ``n_items³``.
    binary:
        Use 1 for each positive (the paper); ``False`` uses summed interaction weights.
    """

    model_type = "ease"
    serves = frozenset({"warm", "hot"})

    def __init__(self, l2: float = 500.0, max_items: int = 20_000, binary: bool = True) -> None:
        super().__init__()
        if l2 <= 0:
            raise InvalidInput(f"EASE l2 must be positive, got {l2}")
        self.l2 = float(l2)
        self.max_items = int(max_items)
        self.binary = binary
        self.B_: np.ndarray | None = None
        self.X_: sp.csr_matrix | None = None

    def get_params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items, "binary": self.binary}

    def _history(self, data: InteractionSet) -> sp.csr_matrix:
        values = "labels" if self.binary else "weights"
        matrix = data.to_csr(values=values, positive_only=True)
        if self.binary:
            matrix.data[:] = 1.0
        return matrix.astype(np.float32)

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        if train.n_items > self.max_items:
            raise InvalidInput(
                f"EASE needs a dense {train.n_items}x{train.n_items} inverse; the catalogue "
                f"exceeds max_items={self.max_items}. Raise max_items if memory allows "
                f"(~{train.n_items**2 * 8 / 1e9:.1f} GB) or use an ALS/two-tower model."
            )
        X = self._history(train)
        gram = (X.T @ X).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += np.float32(self.l2)
        P = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False).astype(np.float32)
        # C order: ``history @ B`` hands scipy B.ravel(), a copy of all n x n for every
        # call when B is in the inverse's Fortran order (and the first copy in a thread
        # page-faults: a cold first request, issue 21)
        B = np.ascontiguousarray(P / (-np.diag(P))[None, :])
        np.fill_diagonal(B, 0.0)
        self.B_, self.X_ = B, X
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.training_metrics = {"positives": int(X.nnz)}
        log.debug("EASE fitted: %d items, l2=%s", train.n_items, self.l2)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """``X[users] · B`` from the training history of each user row."""
        self._check_fitted()
        assert self.X_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= self.X_.shape[0]):
            raise InvalidInput(f"user index out of range [0, {self.X_.shape[0]})")
        return self.score_history(self.X_[users])

    def score_history(self, history: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Scores for arbitrary history rows (``n x n_items``): folds in users unseen at fit."""
        self._check_fitted()
        assert self.B_ is not None
        if history.shape[1] != self.B_.shape[0]:
            raise InvalidInput(
                f"history has {history.shape[1]} columns, expected {self.B_.shape[0]}"
            )
        return np.asarray(history @ self.B_, dtype=np.float32)

    def _save_state(self, folder: Path) -> None:
        assert self.B_ is not None and self.X_ is not None
        np.savez(
            folder / STATE,
            B=self.B_,
            x_data=self.X_.data,
            x_indices=self.X_.indices,
            x_indptr=self.X_.indptr,
            x_shape=np.asarray(self.X_.shape, dtype=np.int64),
        )

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE, allow_pickle=False) as state:
            B = np.ascontiguousarray(state["B"], dtype=np.float32)  # C order: see fit
            X = sp.csr_matrix(
                (state["x_data"], state["x_indices"], state["x_indptr"]),
                shape=tuple(int(v) for v in state["x_shape"]),
            )
        if B.shape != (self.n_items_, self.n_items_) or X.shape != (self.n_users_, self.n_items_):
            raise ArtifactError(f"{folder / STATE} does not match the manifest's shape")
        self.B_, self.X_ = B, X.astype(np.float32)
