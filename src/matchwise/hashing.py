"""Keyed hashes of ids (HMAC-SHA256 under the deployment's ``hash_secret``): what training
snapshots, trained models and analytics exports hold instead of raw user ids."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def hash_id(secret: str, value: str) -> str:
    """Keyed hash of one id: 32 hex characters."""
    return hmac.new(secret.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:32]


def hash_ids(secret: str, values: pd.Series) -> pd.Series:
    """Keyed hashes of a column of ids (a missing id stays missing): each distinct id is
    hashed once, from a keyed state copied rather than rebuilt, and the column is its
    distinct ids' codes taken from their hashes (a training's ten million swipe ids
    were a dict lookup each, issue 21)."""
    codes, uniques = pd.factorize(values)
    if isinstance(values.dtype, pd.CategoricalDtype) or len(uniques) == 0:
        return values.map({v: hash_id(secret, v) for v in uniques})  # dtypes as map gives
    keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    hashes = []
    for value in uniques.tolist():
        state = keyed.copy()
        state.update(str(value).encode())
        hashes.append(state.hexdigest()[:32])
    hashed = pd.Series(hashes).array
    return pd.Series(hashed.take(codes, allow_fill=True), index=values.index, name=values.name)
