"""The one interface every recommender implements, and the id-mapped data it trains on.

A caller never needs to know which model it holds: ``fit`` on an :class:`InteractionSet`,
``score`` a batch of user rows against every candidate, ``recommend`` the top k with
already-seen candidates masked, ``save``/``load`` to a folder without pickle.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.errors import ArtifactError, InvalidInput, NotFitted

MANIFEST = "manifest.json"


@dataclass
class InteractionSet:
    """Interactions in dense-index form (LightFM's Dataset idea, without I/O).

    ``user_ids[u]`` / ``item_ids[i]`` are the external ids of row ``u`` / column ``i``;
    ``users``, ``items``, ``labels``, ``weights`` and ``timestamps`` are aligned arrays,
    one entry per interaction. ``labels`` are in [0, 1] (1 = strong positive);
    ``weights`` are confidences. Optional side features are indexed by dense index.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    user_features: pd.DataFrame | None = None
    item_features: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        n = len(self.users)
        if len(self.items) != n or len(self.labels) != n:
            raise InvalidInput("users, items and labels must have the same length")
        if self.weights is None:
            self.weights = np.ones(n, dtype=np.float32)
        if n and (self.users.max() >= self.n_users or self.items.max() >= self.n_items):
            raise InvalidInput("an interaction refers to a user or item index out of range")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
        **kwargs: Any,
    ) -> InteractionSet:
        """Build from a frame with ``user_id``, ``item_id``, ``label`` (and optional
        ``weight``, ``timestamp``); id universes default to the ids present."""
        for column in ("user_id", "item_id", "label"):
            if column not in frame.columns:
                raise InvalidInput(f"interaction frame has no {column!r} column")
        if user_ids is None:
            user_ids = np.asarray(pd.unique(frame["user_id"]))
        if item_ids is None:
            item_ids = np.asarray(pd.unique(frame["item_id"]))
        users = pd.Index(user_ids).get_indexer(frame["user_id"])
        items = pd.Index(item_ids).get_indexer(frame["item_id"])
        if (users < 0).any() or (items < 0).any():
            raise InvalidInput("the frame names users or items outside the given id universe")
        return cls(
            user_ids=np.asarray(user_ids),
            item_ids=np.asarray(item_ids),
            users=users,
            items=items,
            labels=frame["label"].to_numpy(np.float32),
            weights=frame["weight"].to_numpy(np.float32) if "weight" in frame else None,
            timestamps=frame["timestamp"].to_numpy() if "timestamp" in frame else None,
            **kwargs,
        )

    def subset(self, mask: np.ndarray) -> InteractionSet:
        """The same id universe with only the interactions where ``mask`` is true."""
        return InteractionSet(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            labels=self.labels[mask],
            weights=None if self.weights is None else self.weights[mask],
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            user_features=self.user_features,
            item_features=self.item_features,
            meta=dict(self.meta),
        )

    def to_csr(self, values: str = "labels", positive_only: bool = False) -> sp.csr_matrix:
        """User x item sparse matrix of ``labels``/``weights`` (duplicates summed)."""
        data = np.asarray(getattr(self, values), dtype=np.float32)
        mask = self.labels > 0 if positive_only else np.ones(len(self), dtype=bool)
        matrix = sp.csr_matrix(
            (data[mask], (self.users[mask], self.items[mask])),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        return matrix


class Recommender(ABC):
    """What every model is: fit, score, recommend, save, load, plus metadata.

    Hyperparameters are set in ``__init__``; learned state ends in ``_``; ``fit``
    returns ``self`` (the scikit-learn convention).
    """

    model_type: ClassVar[str]
    #: How the model serves, read by the serving router: the item tiers it may answer
    #: (``warm``, ``hot``), or ``people`` for the people path's two-sided scores; a model
    #: with none is trained for other uses (a baseline, a peer). ``pipeline``: the full
    #: pipeline, preferred for hot users over any single model.
    serves: ClassVar[frozenset[str]] = frozenset()
    pipeline: ClassVar[bool] = False
    #: How :meth:`unit_scores` maps a raw score onto the served scale, in words.
    score_scale: ClassVar[str] = "sigmoid(raw) = 1 / (1 + exp(-raw))"

    def __init__(self) -> None:
        self.version: str = "unversioned"
        self.feature_names: list[str] = []
        self.training_metrics: dict[str, Any] = {}
        self.n_users_: int | None = None
        self.n_items_: int | None = None

    @classmethod
    def from_config(cls, params: dict[str, Any], progress: bool = False) -> Self:
        """A model from config keys (its constructor's parameters); unknown keys are refused
        with a message naming them and the known ones."""
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise InvalidInput(
                f"unknown {cls.model_type} config key(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(accepted)) or 'none'}"
            )
        return cls(**params)

    # --- training and scoring -------------------------------------------------
    @abstractmethod
    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        """Learn from ``train``; ``validation`` (same id universe) may drive early stopping."""

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every candidate for each user row: shape ``(len(users), n_items)``."""

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """``score``'s values on the served scale: [0, 1], higher is better, by a strictly
        increasing map, so ranking by either is the same and a served score means the
        same on every route. Here the logistic function (0 maps to 0.5: no evidence
        either way); models whose scores have their own meaning override it."""
        return sigmoid(scores)

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` candidate indices and scores per user, ``exclude``'s nonzeros masked."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        scores = np.asarray(self.score(users), dtype=np.float32)
        if exclude is not None:
            rows = exclude[users]
            r, c = rows.nonzero()
            scores[r, c] = -np.inf
        top = top_k_indices(scores, k)  # equal scores in index order: the same list every run
        return top, np.take_along_axis(scores, top, axis=1)

    # --- persistence ----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model folder: ``manifest.json`` plus whatever ``_save_state`` writes."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        manifest = {
            "model_type": self.model_type,
            "version": self.version,
            "feature_names": self.feature_names,
            "training_metrics": self.training_metrics,
            "params": self.get_params(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model folder; a missing or corrupt artifact raises :class:`ArtifactError`."""
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"model artifact at {folder} has no {MANIFEST}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
        if manifest.get("model_type") != cls.model_type:
            raise ArtifactError(
                f"{folder} holds a {manifest.get('model_type')!r} model, not {cls.model_type!r}"
            )
        model = cls(**manifest.get("params", {}))
        model.version = manifest.get("version", "unversioned")
        model.feature_names = list(manifest.get("feature_names", []))
        model.training_metrics = dict(manifest.get("training_metrics", {}))
        model.n_users_ = manifest.get("n_users")
        model.n_items_ = manifest.get("n_items")
        try:
            model._load_state(folder)
        except ArtifactError:
            raise
        except Exception as exc:  # any parse failure of the state files means corruption
            raise ArtifactError(f"model artifact at {folder} is corrupt: {exc}") from exc
        return model

    @abstractmethod
    def _save_state(self, folder: Path) -> None:
        """Write learned state (npz with allow_pickle=False, safetensors, text...)."""

    @abstractmethod
    def _load_state(self, folder: Path) -> None:
        """Read what ``_save_state`` wrote."""

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, so ``load`` can rebuild the object."""
        return {}

    def _check_fitted(self) -> None:
        if self.n_items_ is None:
            raise NotFitted(f"{self.model_type} model is not fitted: call fit() or load() first")


def sigmoid(values: np.ndarray) -> np.ndarray:
    """The logistic function in float64, stable for any magnitude (tanh form)."""
    v = np.asarray(values, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for what models hold: NumPy scalars and arrays as
    Python numbers and lists, anything else as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first, equal scores in
    index order (lowest first) and NaN last: one list for one input, run after run.

    A partial sort (``argpartition``) picks among items tied at the cut arbitrarily, and
    a sort of its picks keeps its arbitrary order: popularity, whose scores are counts,
    ties all the time. Rows with a tie across the cut are sorted in full; the others sort
    only their top ``k`` by (score, index).

    >>> top_k_indices(np.array([[1.0, 3.0, 3.0, 2.0, 3.0]]), 2).tolist()
    [[1, 2]]
    """
    values = np.asarray(scores)
    if values.ndim != 2:
        raise InvalidInput(f"scores must be 2-D (users x items), got shape {values.shape}")
    n_rows, n_items = values.shape
    k = min(int(k), n_items)
    if k < 1:
        return np.zeros((n_rows, 0), dtype=np.int64)
    key = np.negative(values)  # ascending key: best first; NaN sorts last
    if k < n_items:
        top = np.argpartition(key, k - 1, axis=1)[:, :k]
        cut = np.take_along_axis(key, top, axis=1).max(axis=1)  # NaN when a NaN made the cut
        unsure = np.isnan(cut) | ((key <= cut[:, None]).sum(axis=1) > k)
        if unsure.any():
            rows = np.flatnonzero(unsure)
            top[rows] = np.argsort(key[rows], axis=1, kind="stable")[:, :k]
    else:
        top = np.broadcast_to(np.arange(n_items), (n_rows, n_items)).copy()
    top_key = np.take_along_axis(key, top, axis=1)
    order = np.lexsort((top, top_key), axis=1)  # by key, then by index
    return np.take_along_axis(top, order, axis=1).astype(np.int64, copy=False)
