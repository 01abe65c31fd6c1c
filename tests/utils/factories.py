"""Small hand-made profiles and items whose right answers are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from matchwise.schemas import ItemIn, UserIn

NOW = datetime.now(UTC).replace(microsecond=0)


def person(ident: str, **kw: Any) -> UserIn:
    base: dict[str, Any] = {
        "id": ident,
        "age": 30,
        "gender": "woman",
        "seeking": ["man"],
        "age_min": 25,
        "age_max": 40,
        "max_distance_km": 50,
        "latitude": 52.52,
        "longitude": 13.405,
        "city": "Berlin",
        "tags": ["hiking"],
    }
    base.update(kw)
    return UserIn(**base)


def people_fixture() -> list[UserIn]:
    """A woman seeking men 25-40 within 50 km, and candidates that each break one rule."""
    return [
        person("alice"),
        person("bob", gender="man", seeking=["woman"], age=32, tags=["hiking", "jazz"]),
        person("carl", gender="man", seeking=["woman"], age=35, tags=["chess"]),
        person("dan_too_old", gender="man", seeking=["woman"], age=55, age_min=40, age_max=70),
        person("erin_woman", gender="woman", seeking=["woman"], age=31),
        person("fred_far", gender="man", seeking=["woman"], latitude=48.137, longitude=11.575),
        person("gus_seeks_men", gender="man", seeking=["man"], age=29),
        person("hal_picky", gender="man", seeking=["woman"], age=33, age_min=20, age_max=26),
        person("ivan", gender="man", seeking=["woman"], age=28, tags=["hiking"]),
    ]


def items_fixture() -> list[ItemIn]:
    return [
        ItemIn(id="e1", kind="event", title="Trail run", category="sport", city="Berlin",
               tags=["running", "outdoors"], starts_at=NOW + timedelta(days=3)),
        ItemIn(id="e2", kind="event", title="Jazz night", category="music", city="Berlin",
               tags=["jazz"], starts_at=NOW + timedelta(days=5)),
        ItemIn(id="e3", kind="event", title="Past meetup", category="tech", city="Berlin",
               tags=["python"], starts_at=NOW - timedelta(days=5)),
        ItemIn(id="e4", kind="event", title="Python meetup", category="tech", city="Munich",
               tags=["python"], starts_at=NOW + timedelta(days=10)),
    ]  # fmt: skip
