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
    """Keyed hashes of a column of ids (None stays None); each distinct id hashed once."""
    uniques = pd.unique(values.dropna())
    mapping = {v: hash_id(secret, v) for v in uniques}
    return values.map(mapping)
