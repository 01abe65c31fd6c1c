"""People-domain signals: bio similarity, swipe adjustment, reciprocity, blend, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from matchwise.errors import InvalidInput
from matchwise.features.people import (
    bio_similarity,
    blend,
    interaction_adjustment,
    reason_for,
    reciprocal_score,
)
from matchwise.settings import BlendWeights


def test_bio_similarity_is_cosine_and_zero_vectors_score_zero() -> None:
    user = np.array([1.0, 0.0, 0.0])
    cands = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    sims = bio_similarity(user, cands)
    np.testing.assert_allclose(sims, [1.0, 0.0, np.sqrt(0.5), 0.0])
    no_bio = bio_similarity(np.zeros(3), cands)
    assert np.all(no_bio == 0) and not np.isnan(no_bio).any()
    assert bio_similarity(user, np.zeros((0, 3))).shape == (0,)
    with np.errstate(all="raise"):  # no division warnings either
        bio_similarity(np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(InvalidInput):
        bio_similarity(user, np.ones((2, 4)))


def test_interaction_adjustment_follows_likes_and_rejections() -> None:
    hiker, clubber, neutral = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    cands = np.array([hiker, clubber, neutral, hiker])
    liked = np.array([[0.9, 0.1, 0.0]])
    rejected = np.array([[0.1, 0.9, 0.0]])
    liked_me = np.array([False, False, False, True])
    adj = interaction_adjustment(cands, liked, rejected, liked_me)
    assert adj[0] > adj[2] > adj[1]  # like what you liked, not what you rejected
    assert adj[3] > adj[0]  # and someone who already liked you rises further
    assert np.all((adj >= -1) & (adj <= 1))
    # superlikes count more through weights
    weighted = interaction_adjustment(
        cands, np.array([hiker, clubber]), None, liked_weights=np.array([1.5, 1.0])
    )
    assert weighted[0] > weighted[1]
    # nothing to go on: no adjustment, no NaN
    empty = interaction_adjustment(cands, np.zeros((0, 3)), None)
    np.testing.assert_array_equal(empty, 0.0)
    with pytest.raises(InvalidInput):
        interaction_adjustment(cands, liked, rejected, np.array([True]))


def test_reciprocal_modes() -> None:
    p_ab = np.array([0.9, 0.5, 0.9, 0.0])
    p_ba = np.array([0.0, 0.5, 0.6, 0.0])
    harmonic = reciprocal_score(p_ab, p_ba)
    np.testing.assert_allclose(harmonic, [0.0, 0.5, 0.72, 0.0])
    # someone who would never like you back ranks below a lukewarm two-sided fit
    assert harmonic[0] < harmonic[1]
    np.testing.assert_allclose(reciprocal_score(p_ab, p_ba, "product"), p_ab * p_ba)
    np.testing.assert_allclose(reciprocal_score(p_ab, p_ba, "min"), np.minimum(p_ab, p_ba))
    np.testing.assert_allclose(reciprocal_score(p_ab, p_ba, "weighted", weight=1.0), p_ab)
    np.testing.assert_allclose(
        reciprocal_score(p_ab, p_ba, "weighted", weight=0.5), np.sqrt(p_ab * p_ba)
    )
    for mode in ("harmonic", "product", "min", "weighted"):
        forward = reciprocal_score(p_ab, p_ba, mode)
        np.testing.assert_allclose(forward, reciprocal_score(p_ba, p_ab, mode))  # symmetric
        assert np.all((forward >= 0) & (forward <= 1))
    assert reciprocal_score(np.array([np.nan]), np.array([0.5]))[0] == 0.0
    with pytest.raises(InvalidInput, match="mode"):
        reciprocal_score(p_ab, p_ba, "mean")
    with pytest.raises(InvalidInput, match="shape"):
        reciprocal_score(p_ab, p_ba[:2])


def test_blend_scores_and_names_the_strongest_signal() -> None:
    signals = {
        "model": np.array([0.9, 0.1, 0.2, 0.0]),
        "compatibility": np.array([0.1, 0.9, 0.2, 0.0]),
        "bio": np.array([0.0, 0.0, 0.9, 0.0]),
    }
    weights = {"model": 0.5, "compatibility": 0.3, "bio": 0.2, "elo": 1.0}
    score, names = blend(signals, weights)
    np.testing.assert_allclose(score, [0.48, 0.32, 0.34, 0.0])
    assert names.tolist() == ["model", "compatibility", "bio", "model"]
    # the settings object works as weights; a signal without a weight counts nothing
    score2, _ = blend({**signals, "unknown": np.ones(4)}, BlendWeights())
    defaults = BlendWeights()
    expected = (
        defaults.model * signals["model"]
        + defaults.compatibility * signals["compatibility"]
        + defaults.bio * signals["bio"]
    )
    np.testing.assert_allclose(score2, expected)
    with pytest.raises(InvalidInput):
        blend({"a": np.ones(2), "b": np.ones(3)}, {"a": 1, "b": 1})
    with pytest.raises(InvalidInput):
        blend({}, {})


def test_reasons_are_short_and_human() -> None:
    assert reason_for("compatibility", {"shared_tags": ["hiking"]}) == "you both like hiking"
    assert (
        reason_for("compatibility", {"shared_tags": ["hiking", "chess", "wine"]})
        == "you both like hiking and chess"
    )
    assert reason_for("reciprocal") == "likes people like you"
    assert reason_for("interaction") == "similar to people you liked"
    assert reason_for("interaction", {"liked_me": True}, reveal_likes=True) == "already likes you"
    assert reason_for("liked_me", reveal_likes=True) == "already likes you"
    assert reason_for("popularity") == "popular around you"
    assert "nearby" in reason_for("distance", {"distance_km": 2.4})
    assert reason_for("compatibility", {}) == "fits what you are both looking for"
    assert reason_for("something_new") == "recommended for you"
    for name in ("model", "bio", "elo", "age"):
        assert 0 < len(reason_for(name)) < 60
