"""The training-time sample that monitoring compares serving with (score and feature drift).

At training, a sample of the users the model learnt from gets its top-``k`` list scored
the way serving scores it (the model's raw scores mapped by ``unit_scores``, everything
the user already acted on left out), and this module turns that into a small JSON-able
sample: the served-scale scores with their ranks, the users' features and the listed
candidates' features. Monitoring computes the same features for the users and candidates
the ranking cache holds for that version (:func:`user_features`,
:func:`candidate_features`: one definition for both sides) and compares them with
:func:`matchwise.experiments.drift.feature_psi`.

No ids are kept: only feature values and scores.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.models.base import InteractionSet, Recommender

#: The file in a model version's artifact folder that holds its sample.
REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT = 1
NUMERIC_FEATURES = ("user_age", "user_events", "score")
SCORE = "score"


def user_features(users: pd.DataFrame, events: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Per user: ``user_age`` (NaN unknown), ``user_gender``, ``user_city`` (None unknown)
    from a frame with those profile columns, and ``user_events``: how many distinct
    candidates the user has a labelled interaction with (``events``, aligned with rows)."""
    n = len(users)

    def column(name: str) -> pd.Series:
        return users[name] if name in users else pd.Series([None] * n, index=users.index)

    return {
        "user_age": pd.to_numeric(column("age"), errors="coerce").to_numpy(np.float64),
        "user_gender": _labels(column("gender")),
        "user_city": _labels(column("city")),
        "user_events": np.asarray(events, dtype=np.float64),
    }


def candidate_features(candidates: pd.DataFrame) -> dict[str, Any]:
    """Per listed candidate: its ``category`` and ``city`` (None unknown)."""
    n = len(candidates)
    empty = pd.Series([None] * n, index=candidates.index)
    return {
        "candidate_category": _labels(candidates.get("category", empty)),
        "candidate_city": _labels(candidates.get("city", empty)),
    }


def _labels(values: pd.Series) -> np.ndarray:
    return np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)


def acted_on(
    frames: Sequence[pd.DataFrame],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    actions: Collection[str] | None = None,
) -> sp.csr_matrix:
    """Users x candidates with a labelled interaction in any of ``frames`` (``user_id``,
    ``item_id`` and, to keep only ``actions``, ``action`` columns: a dataset's splits), 1
    where the user acted, in the given ids' order. Every action: per row, the user's
    events; the actions serving leaves out (``DECIDED_ACTIONS``): what a list leaves out."""
    frame = pd.concat([f[[c for c in ("user_id", "item_id", "action") if c in f]]
                       for f in frames], ignore_index=True)  # fmt: skip
    if actions is not None and "action" in frame:
        frame = frame[frame["action"].isin(list(actions))]
    u = pd.Index(user_ids).get_indexer(frame["user_id"])
    i = pd.Index(item_ids).get_indexer(frame["item_id"])
    ok = (u >= 0) & (i >= 0)
    matrix = sp.csr_matrix((np.ones(int(ok.sum())), (u[ok], i[ok])),
                           shape=(len(user_ids), len(item_ids)))  # fmt: skip
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def reference_sample(
    model: Recommender,
    train: InteractionSet,
    known: sp.csr_matrix,
    decided: sp.csr_matrix,
    users: pd.DataFrame,
    candidates: pd.DataFrame | None,
    top_k: int = 50,
    max_users: int = 500,
    min_events: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """The sample of one trained model (see the module docstring), JSON-able.

    ``known``: :func:`acted_on` the dataset's splits, in ``train``'s id universe (per row,
    the user's events); ``decided``: the same for the actions a served list leaves out;
    ``users``: the
    profile frame (``id`` column in ``train.user_ids``' terms); ``candidates``: the item
    frame (``id``, ``category``, ``city``) when the model's lists are what serves (the
    items domain), else None (no scores or candidate features then). Users with fewer
    than ``min_events`` events are left out: the router does not send them to a model.
    """
    events = np.diff(known.indptr).astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(events >= max(min_events, 1))
    if len(rows) > max_users:
        rows = np.sort(rng.choice(rows, size=max_users, replace=False))
    profiles = users.set_index("id").reindex(train.user_ids[rows].tolist()).reset_index()
    features = {name: values.tolist() for name, values in
                user_features(profiles, events[rows]).items()}  # fmt: skip
    sample: dict[str, Any] = {"format": REFERENCE_FORMAT, "users": int(len(rows)),
                              "numeric": list(NUMERIC_FEATURES), "features": features}  # fmt: skip
    if candidates is None or len(rows) == 0 or train.n_items == 0:
        return _jsonable(sample)
    k = min(top_k, train.n_items)
    ranks: list[int] = []
    scores: list[float] = []
    listed: list[int] = []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        raw = np.asarray(model.score(chunk), dtype=np.float64)
        raw[decided[chunk].toarray() > 0] = -np.inf
        top = np.argsort(-raw, axis=1, kind="stable")[:, :k]
        for i in range(len(chunk)):
            picked = top[i][np.isfinite(raw[i, top[i]])]
            ranks.extend(range(1, len(picked) + 1))
            scores.extend(np.asarray(model.unit_scores(raw[i, picked]), dtype=np.float64))
            listed.extend(picked.tolist())
    items = candidates.set_index("id").reindex(train.item_ids[listed].tolist())
    for name, values in candidate_features(items).items():
        sample["features"][name] = values.tolist()
    sample["features"][SCORE] = [float(s) for s in scores]
    sample["ranks"] = [int(r) for r in ranks]
    sample["top_k"] = k
    return _jsonable(sample)


def _jsonable(sample: dict[str, Any]) -> dict[str, Any]:
    """NaN becomes None (JSON has no NaN); :func:`read_reference` turns it back."""
    sample["features"] = {
        name: [None if isinstance(v, float) and v != v else v for v in values]
        for name, values in sample["features"].items()
    }
    return sample


@dataclass(frozen=True)
class Reference:
    """A stored sample, as arrays: numeric features float (NaN unknown), others object."""

    users: int
    features: dict[str, np.ndarray]
    ranks: np.ndarray  # rank of each score / candidate feature value, 1-based
    top_k: int

    def up_to_rank(self, name: str, rank: int) -> np.ndarray:
        """A per-candidate feature (score, candidate_*) restricted to ranks <= ``rank``."""
        return self.features[name][self.ranks <= rank]


def read_reference(data: Mapping[str, Any]) -> Reference:
    numeric = set(data.get("numeric", NUMERIC_FEATURES))
    features: dict[str, np.ndarray] = {}
    for name, values in dict(data.get("features", {})).items():
        if name in numeric:
            features[name] = np.array([np.nan if v is None else v for v in values], np.float64)
        else:
            features[name] = np.array(values, dtype=object)
    return Reference(
        users=int(data.get("users", 0)),
        features=features,
        ranks=np.asarray(data.get("ranks", []), dtype=np.int64),
        top_k=int(data.get("top_k", 0)),
    )
