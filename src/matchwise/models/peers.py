"""implicit's ALS and BPR behind the Recommender interface, as benchmark peers and baselines.

Only the learned factors are kept, so saved models are plain npz and load without implicit.
BLAS is held to one thread while fitting (implicit parallelises itself; a BLAS thread
pool on top makes it many times slower).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.models.base import InteractionSet, Recommender

STATE = "factors.npz"


class _FactorModel(Recommender):
    """Shared scoring and persistence: ``score = user_factors[users] · item_factorsᵀ``."""

    def __init__(self, use_weights: bool = False) -> None:
        super().__init__()
        self.use_weights = use_weights
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None

    def _user_items(self, train: InteractionSet) -> sp.csr_matrix:
        """Positives as a user x item matrix: 1 each, or summed weights with ``use_weights``."""
        matrix = train.to_csr(
            values="weights" if self.use_weights else "labels", positive_only=True
        )
        if not self.use_weights:
            matrix.data[:] = 1.0
        return matrix.astype(np.float32)

    def get_params(self) -> dict[str, Any]:
        """Every constructor argument, read back from the attribute of the same name."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def _implicit_model(self) -> Any:
        """The configured ``implicit`` estimator (built with BLAS held to one thread)."""
        raise NotImplementedError

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        with threadpool_limits(1, "blas"):  # implicit checks BLAS threads on init
            model = self._implicit_model()
            model.fit(self._user_items(train), show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.user_factors_ is not None and self.item_factors_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= len(self.user_factors_)):
            raise InvalidInput(f"user index out of range [0, {len(self.user_factors_)})")
        return self.user_factors_[users] @ self.item_factors_.T

    def _save_state(self, folder: Path) -> None:
        assert self.user_factors_ is not None and self.item_factors_ is not None
        np.savez(folder / STATE, user_factors=self.user_factors_, item_factors=self.item_factors_)

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE, allow_pickle=False) as state:
            users, items = state["user_factors"], state["item_factors"]
        if len(users) != self.n_users_ or len(items) != self.n_items_:
            raise ArtifactError(f"{folder / STATE} does not match the manifest's shape")
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ArtifactError(f"{folder / STATE} holds factors of mismatched dimensions")
        self.user_factors_, self.item_factors_ = users.astype(np.float32), items.astype(np.float32)


class ImplicitALSRecommender(_FactorModel):
    """Weighted-matrix-factorisation ALS (Hu, Koren, Volinsky 2008) from ``implicit``.

    Confidence is ``1 + alpha * r``; ``regularization`` is the ridge penalty on factors.
    """

    model_type = "implicit_als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 0,
        num_threads: int = 0,
        use_weights: bool = False,
    ) -> None:
        super().__init__(use_weights=use_weights)
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.random_state = int(random_state)
        self.num_threads = int(num_threads)

    def _implicit_model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )


class ImplicitBPRRecommender(_FactorModel):
    """Bayesian Personalised Ranking (Rendle et al. 2009) by SGD, from ``implicit``.

    ``num_threads=1`` (the default) keeps training deterministic for a given seed; more
    threads train lock-free (Hogwild) and vary slightly from run to run.
    """

    model_type = "implicit_bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 0,
        num_threads: int = 1,
        use_weights: bool = False,
    ) -> None:
        super().__init__(use_weights=use_weights)
        self.factors = int(factors)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.iterations = int(iterations)
        self.random_state = int(random_state)
        self.num_threads = int(num_threads)

    def _implicit_model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
