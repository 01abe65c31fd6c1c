"""Reasons never give away where someone lives or whom they swiped on."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from matchwise.features.people import reason_for
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from matchwise.serve.recommend import recommend
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture

DISTANCES = [0.0, 0.4, 1.0, 2.0, 2.4, 3.7, 9.9, 10.0, 24.0, 49.0, 51.0, 200.0, 5000.0]


@pytest.mark.parametrize("signal", ["distance", "proximity", "compatibility"])
def test_distance_reasons_name_a_band_never_a_figure(signal: str) -> None:
    reasons = {d: reason_for(signal, {"distance_km": d}) for d in DISTANCES}
    for distance, reason in reasons.items():
        assert not re.search(r"\d", reason), (distance, reason)
        assert "km" not in reason and "mile" not in reason
    # moving a few km never changes the reason inside a band: nothing to triangulate with
    assert len({reasons[d] for d in (0.0, 0.4, 1.0, 2.0, 2.4, 3.7, 9.9)}) == 1
    assert len(set(reasons.values())) <= 3


def test_already_likes_you_only_when_the_setting_reveals_likes() -> None:
    assert Settings().reveal_likes_in_reasons is False
    liked = {"liked_me": True, "shared_tags": ["hiking"]}
    for signal in ("interaction", "liked_me", "reciprocal", "compatibility", "model", "elo"):
        assert reason_for(signal, liked) != "already likes you"
        assert reason_for(signal, liked, reveal_likes=True) == "already likes you"
    # the next honest reason instead: what the two share, not the swipe
    assert reason_for("interaction", liked) == "you both like hiking"
    assert reason_for("liked_me", {"liked_me": True}) == "fits what you are both looking for"
    assert reason_for("interaction", {}) == "similar to people you liked"


def _seed_with_a_like(runtime: Runtime) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    with runtime.session() as s:
        like = InteractionIn(user_id="carl", target_user_id="alice", action="like")
        ingest_events(s, [like], runtime.settings.action_table)


def _reasons(runtime: Runtime, settings: Settings) -> dict[str, str]:
    with runtime.session() as s:
        result = recommend(replace(runtime, settings=settings), s, "alice", limit=10,
                           kind="user", use_cache=False)  # fmt: skip
    return {r.candidate_id: r.reason for r in result.recommendations}


def test_served_people_reasons_keep_likes_private_unless_enabled(runtime: Runtime) -> None:
    _seed_with_a_like(runtime)
    hidden = _reasons(runtime, runtime.settings)
    assert "carl" in hidden and hidden["carl"] != "already likes you"
    assert all("likes you" not in r and not re.search(r"\d", r) for r in hidden.values())
    revealing = runtime.settings.model_copy(update={"reveal_likes_in_reasons": True})
    assert _reasons(runtime, revealing)["carl"] == "already likes you"


def test_reveal_likes_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHWISE_REVEAL_LIKES_IN_REASONS", "true")
    assert Settings().reveal_likes_in_reasons is True
    field = Settings.model_fields["reveal_likes_in_reasons"]
    assert field.description and "private" in field.description
