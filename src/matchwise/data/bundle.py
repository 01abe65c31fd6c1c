"""DataBundle: the in-memory shape every generator and loader returns, before the store.

Column names are the wire contract's (``schemas.UserIn``, ``schemas.ItemIn``) so a bundle
can be written by ``ingest.write_bundle`` without renaming:

- ``users``: ``id`` (str) required; optional ``age, gender, seeking (list[str]), age_min,
  age_max, max_distance_km, latitude, longitude, city, bio, tags (list[str]),
  attributes (dict), name, email, birth_date``.
- ``items``: ``id`` (str) required; optional ``kind, title, text, category, city, owner_id,
  starts_at (tz-aware UTC), tags (list[str]), attributes (dict)``.
- ``interactions``: ``event_id, user_id, action`` (str), exactly one of ``item_id`` /
  ``target_user_id`` per row (the other None), ``value`` (float or NaN),
  ``occurred_at`` (tz-aware UTC pandas Timestamp); optional ``position, duration_ms,
  session_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class DataBundle:
    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    name: str = "bundle"
    domain: str = "items"
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "users": len(self.users),
            "items": len(self.items),
            "interactions": len(self.interactions),
        }
