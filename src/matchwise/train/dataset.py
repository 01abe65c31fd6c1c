"""A dataset from the store: what ``train``, ``evaluate`` and ``dataset build`` read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy.orm import Session

from matchwise.actions import ActionRule
from matchwise.data.dataset import Dataset, Domain, SplitName, make_dataset
from matchwise.db import queries


def build_dataset(
    session: Session,
    table: dict[str, ActionRule],
    secret: str,
    domain: Domain = "items",
    negative_samples: int = 0,
    negative_strategy: Literal["uniform", "popularity"] = "uniform",
    min_interactions: int = 1,
    split: SplitName = "temporal",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> Dataset:
    """Store → labelled, split dataset in memory (``save_dataset`` writes it)."""
    raw = queries.training_interactions(session, domain)
    users = queries.training_users(session)
    items = queries.training_items(session) if domain == "items" else None
    return make_dataset(raw, users, items, table, secret, domain=domain,
                        negative_samples=negative_samples, negative_strategy=negative_strategy,
                        min_interactions=min_interactions, split=split, ratios=ratios,
                        seed=seed)  # fmt: skip
