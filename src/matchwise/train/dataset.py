"""A dataset from the store: what ``train``, ``evaluate`` and ``dataset build`` read."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from matchwise.actions import ActionRule
from matchwise.data.dataset import Dataset, Domain, make_dataset
from matchwise.db import queries


def build_dataset(
    session: Session,
    table: dict[str, ActionRule],
    secret: str,
    domain: Domain = "items",
    **options: Any,
) -> Dataset:
    """Store → labelled, split dataset in memory (``save_dataset`` writes it); ``options``
    are :func:`~matchwise.data.dataset.make_dataset`'s (negatives, split, ratios, seed)."""
    raw = queries.training_interactions(session, domain)
    users = queries.training_users(session)
    items = queries.training_items(session) if domain == "items" else None
    return make_dataset(raw, users, items, table, secret, domain=domain, **options)
