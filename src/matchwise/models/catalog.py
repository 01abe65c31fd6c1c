"""Model types by name: the one place the CLI, jobs and serving look models up."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from matchwise.errors import InvalidInput
from matchwise.models.base import Recommender

MODEL_TYPES: dict[str, str] = {
    "popularity": "matchwise.models.popularity:PopularityRecommender",
    "ease": "matchwise.models.ease:EASERecommender",
    "two_tower": "matchwise.models.two_tower:TwoTowerRecommender",
    "logistic": "matchwise.models.logistic:LogisticRecommender",
    "hybrid": "matchwise.models.hybrid:HybridRecommender",
    "reciprocal": "matchwise.models.reciprocal:ReciprocalRecommender",
    "pairwise": "matchwise.models.pairwise:PairwiseRecommender",
    "implicit_als": "matchwise.models.peers:ImplicitALSRecommender",
    "implicit_bpr": "matchwise.models.peers:ImplicitBPRRecommender",
    "item_knn": "matchwise.models.item_knn:ItemKNNRecommender",
    "rp3beta": "matchwise.models.rp3beta:RP3betaRecommender",
}

#: --epochs/--lr/--l2 map onto each model's own parameter names.
FLAG_ALIASES: dict[str, dict[str, str]] = {
    "two_tower": {"epochs": "epochs", "lr": "lr", "l2": "weight_decay"},
    "logistic": {"epochs": "epochs", "lr": "lr", "l2": "l2"},
    "ease": {"l2": "l2"},
    "implicit_als": {"epochs": "iterations", "l2": "regularization"},
    "implicit_bpr": {"epochs": "iterations", "lr": "learning_rate", "l2": "regularization"},
}


#: Names people try that are parts of a model, not models: what to train instead.
PARTS = {
    "ranker": "the LightGBM ranker is the hybrid's re-ranking stage, trained with it: "
    "`matchwise train hybrid`",
    "safety": "the safety classifier trains on its own corpora: `matchwise train safety`",
}


def model_class(name: str) -> type[Recommender]:
    if name in PARTS:
        raise InvalidInput(f"{name!r} is not a recommendation model: {PARTS[name]}")
    if name not in MODEL_TYPES:
        raise InvalidInput(f"unknown model {name!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    module, _, attr = MODEL_TYPES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"model {name!r} is not available in this installation: {exc}") from exc


def serving_traits(name: str) -> tuple[frozenset[str], bool]:
    """What a model type serves and whether it is a full pipeline (its class's ``serves``
    and ``pipeline``); nothing for a type that is not a recommendation model."""
    if name not in MODEL_TYPES:
        return frozenset(), False
    cls = model_class(name)
    return cls.serves, cls.pipeline


def read_config(path: str | Path | None) -> dict[str, Any]:
    """A JSON object of hyperparameters; a clear error for a missing or malformed file."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"config file {file} does not exist")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise InvalidInput(f"config file {file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"config file {file} must hold a JSON object")
    return data


def make_model(
    name: str,
    config: dict[str, Any] | None = None,
    flags: dict[str, float | int | None] | None = None,
    progress: bool = False,
) -> Recommender:
    """Build a model from a config dict and the --epochs/--lr/--l2 flags; unknown keys refused."""
    cls = model_class(name)
    params = dict(config or {})
    aliases = FLAG_ALIASES.get(name, {})
    for flag, value in (flags or {}).items():
        if value is None:
            continue
        if flag not in aliases:
            raise InvalidInput(f"--{flag} does not apply to the {name} model")
        params[aliases[flag]] = value
    return cls.from_config(params, progress=progress)
