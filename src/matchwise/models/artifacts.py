"""A trained model as it is saved and served: the model plus the (hashed) user and item
ids it was trained with, saved to and loaded from one folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matchwise.errors import ArtifactError
from matchwise.models.base import Recommender
from matchwise.models.catalog import model_class

IDS_FILE = "ids.npz"
TRAINING_FILE = "training.json"


@dataclass
class TrainedModel:
    """A model with the id maps it was trained with (ids are keyed hashes)."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    domain: str
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        self.item_index = {u: i for i, u in enumerate(self.item_ids.tolist())}


def save_trained(trained: TrainedModel, folder: Path) -> Path:
    trained.model.save(folder)
    np.savez(
        folder / IDS_FILE,
        user_ids=trained.user_ids.astype(str),
        item_ids=trained.item_ids.astype(str),
    )
    (folder / TRAINING_FILE).write_text(
        json.dumps({"domain": trained.domain, **trained.info}, indent=2, default=str)
    )
    return folder


def load_trained(folder: str | Path) -> TrainedModel:
    """Load a registered model folder; a missing or corrupt one raises ArtifactError."""
    path = Path(folder)
    try:
        info = json.loads((path / TRAINING_FILE).read_text())
        manifest = json.loads((path / "manifest.json").read_text())
        with np.load(path / IDS_FILE, allow_pickle=False) as ids:
            user_ids, item_ids = ids["user_ids"], ids["item_ids"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"model artifact at {path} is missing or corrupt: {exc}") from exc
    model = model_class(manifest["model_type"]).load(path)
    return TrainedModel(model, user_ids, item_ids, info.get("domain", "items"), info)
