"""Serving state: the active models, their ANN index and the candidate catalogue, loaded
once per process and refreshed when the registry changes.

A new active version is picked up within ``check_seconds``; if it cannot be loaded
(missing or corrupt artifact) the previously loaded version keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from matchwise import registry
from matchwise.db import queries
from matchwise.errors import ArtifactError, MatchwiseError
from matchwise.index import HNSWIndex, VectorIndex
from matchwise.privacy import hash_id
from matchwise.training import TrainedModel, load_trained

log = logging.getLogger(__name__)

#: Model types the router uses: warm users get retrieval, hot users the full pipeline.
WARM_MODELS = ("two_tower", "ease", "logistic")
HOT_MODELS = ("hybrid", "two_tower", "ease", "logistic")


@dataclass
class LoadedModel:
    """A trained model plus what serving needs next to it."""

    registry_id: str
    version: str
    model_type: str
    trained: TrainedModel
    index: VectorIndex | None = None
    item_vectors: np.ndarray | None = None

    @property
    def domain(self) -> str:
        return self.trained.domain

    def user_row(self, secret: str, user_id: str) -> int | None:
        return self.trained.user_index.get(hash_id(secret, user_id))


def _attach_index(loaded: LoadedModel) -> LoadedModel:
    """Two-tower models serve candidates from an ANN index over the candidate tower."""
    model = loaded.trained.model
    if hasattr(model, "item_embeddings"):
        vectors = np.asarray(model.item_embeddings(), dtype=np.float32)
        loaded.item_vectors = vectors
        loaded.index = HNSWIndex().build(vectors)
    return loaded


@dataclass
class Catalogue:
    """Candidate items with what filters and reasons need, as arrays."""

    frame: pd.DataFrame
    loaded_at: float
    tags: list[frozenset[str]] = field(default_factory=list)


class ServingState:
    """Process-wide cache of active models and the item catalogue (thread-safe)."""

    def __init__(self, store: registry.ArtifactStore, check_seconds: float = 10.0) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self._models: dict[str, LoadedModel | None] = {}
        self._checked: dict[str, float] = {}
        self._catalogue: Catalogue | None = None
        self._lock = threading.Lock()

    def model(self, session: Session, model_type: str) -> LoadedModel | None:
        """The active version of ``model_type`` (None when there is none or none loads)."""
        now = time.monotonic()
        if now - self._checked.get(model_type, -1e9) < self.check_seconds:
            return self._models.get(model_type)
        with self._lock:
            self._checked[model_type] = now
            row = registry.active_version(session, model_type)
            current = self._models.get(model_type)
            if row is None:
                self._models[model_type] = None
                return None
            if current is not None and current.registry_id == row.id:
                return current
            try:
                trained = load_trained(self.store.fetch(row.uri))
                loaded = _attach_index(LoadedModel(row.id, row.version, row.model_type, trained))
            except (ArtifactError, MatchwiseError, OSError, ValueError) as exc:
                log.error("cannot load %s %s (%s); keeping the previous version", model_type,
                          row.version, exc)  # fmt: skip
                return current
            self._models[model_type] = loaded
            log.info("serving %s %s", model_type, row.version)
            return loaded

    def first_model(
        self, session: Session, types: tuple[str, ...], domain: str
    ) -> LoadedModel | None:
        for model_type in types:
            loaded = self.model(session, model_type)
            if loaded is not None and loaded.domain == domain:
                return loaded
        return None

    def catalogue(self, session: Session, max_age: float = 30.0) -> Catalogue:
        now = time.monotonic()
        cat = self._catalogue
        if cat is not None and now - cat.loaded_at < max_age:
            return cat
        frame = queries.items_frame(session, only_active=True)
        frame["starts_at"] = pd.to_datetime(frame["starts_at"], utc=True)
        frame["category_lc"] = frame["category"].fillna("").str.lower()
        frame["city_lc"] = frame["city"].fillna("").str.lower()
        tags = [frozenset(str(t).lower() for t in (v or [])) for v in frame["tags"]]
        self._catalogue = Catalogue(frame.set_index("id", drop=False), now, tags)
        return self._catalogue

    def invalidate(self) -> None:
        with self._lock:
            self._checked.clear()
            self._catalogue = None


_STATES: dict[str, ServingState] = {}


def state_for(artifact_root: str) -> ServingState:
    """One serving state per artifact root per process (the API and CLI share it)."""
    if artifact_root not in _STATES:
        _STATES[artifact_root] = ServingState(registry.ArtifactStore(artifact_root))
    return _STATES[artifact_root]


def reset_states() -> None:
    _STATES.clear()


__all__ = ["Catalogue", "LoadedModel", "ServingState", "state_for"]
