"""``stream_people`` yields a big population a block at a time: global ids p0…p{n-1}
each once, every swipe between two people of its own block, event ids unique across
blocks, and the swipes shared out to the exact total."""

from __future__ import annotations

import pandas as pd

from matchwise.data.synthetic import stream_people


def test_blocks_make_one_population() -> None:
    parts = list(stream_people(1000, 12_000, seed=3, block=300))
    assert len(parts) == 4
    users = pd.concat([p.users for p in parts], ignore_index=True)
    assert users["id"].tolist() == [f"p{i}" for i in range(1000)]
    swipes = pd.concat([p.interactions for p in parts], ignore_index=True)
    assert len(swipes) == 12_000 and swipes["event_id"].is_unique
    for part in parts:
        own = set(part.users["id"])
        assert set(part.interactions["user_id"]) <= own
        assert set(part.interactions["target_user_id"]) <= own
        assert set(part.meta["truth"]["users"].index) == own
