"""A dataset from the store: what ``train``, ``evaluate`` and ``dataset build`` read."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from matchwise.actions import ActionRule
from matchwise.data.dataset import Dataset, Domain, make_dataset
from matchwise.db import columnar, queries


def build_dataset(
    session: Session,
    table: dict[str, ActionRule],
    secret: str,
    domain: Domain = "items",
    **options: Any,
) -> Dataset:
    """Store → labelled, split dataset in memory (``save_dataset`` writes it); ``options``
    are :func:`~matchwise.data.dataset.make_dataset`'s (negatives, split, ratios, seed)."""
    if session.get_bind().dialect.name == "postgresql":  # COPY, a block of columns at a time
        raw = columnar.training_interactions(session, domain)
        users = columnar.training_users(session)
    else:
        raw = queries.training_interactions(session, domain)
        users = queries.training_users(session)
    items = queries.training_items(session) if domain == "items" else None
    if domain == "people":
        users = people_only(users, raw)
    return make_dataset(raw, users, items, table, secret, domain=domain, **options)


def people_only(users: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The people-domain universe: users with a dating profile (a gender) or a part in a
    people-domain event (swiper or swiped). Item-domain users are neither; counted, they
    would be candidates nobody can match and, for EASE, rows and columns of its n x n
    inverse (issue 21: 20,000 of them turned 20,000 people into a 40,000-wide matrix)."""
    # each column's distinct ids first: ten million swipes name a million people
    distinct = [pd.Series(pd.unique(raw[column])) for column in ("user_id", "item_id")]
    involved = pd.concat(distinct).astype(str).unique()
    keep = users["gender"].notna() | users["id"].astype(str).isin(involved)
    return users[keep.to_numpy()].reset_index(drop=True)
