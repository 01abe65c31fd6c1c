"""People-domain signals: bio similarity, swipe adjustment, reciprocity, running swipe
rates, blend, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from matchwise.errors import InvalidInput
from matchwise.features.people import (
    RATE_PRIOR_SWIPES,
    SwipeCounts,
    bio_similarity,
    blend,
    combine_probabilities,
    distance_band,
    distance_bands,
    group_medians,
    interaction_adjustment,
    like_rate,
    rate_like_probability,
    reason_for,
    reciprocal_score,
    smoothed_rate,
    swipe_rate_score,
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
    assert reason_for("popularity", {"distance_km": 3.0}) == "popular around you"
    assert "nearby" in reason_for("distance", {"distance_km": 2.4})
    assert reason_for("compatibility", {}) == "fits what you are both looking for"
    assert reason_for("something_new") == "recommended for you"
    for name in ("model", "bio", "elo", "age"):
        assert 0 < len(reason_for(name)) < 60


def test_running_rates_start_at_the_population_and_learn_from_each_swipe() -> None:
    assert like_rate([], []) == 0.5 and like_rate([0], [0]) == 0.5
    assert like_rate([3, 1], [4, 6]) == pytest.approx(0.4)
    assert 0 < like_rate([0], [10]) < 0.01 and 0.99 < like_rate([10], [10]) < 1
    # no swipes: the population's rate; then the person's own share, smoothed
    np.testing.assert_allclose(
        smoothed_rate([0, 3, 30], [0, 4, 40], 0.4), [0.4, 3.8 / 6, 30.8 / 42]
    )
    assert RATE_PRIOR_SWIPES == 2.0
    with np.errstate(all="raise"):
        np.testing.assert_allclose(smoothed_rate([np.nan, 5], [np.nan, 2], 0.4), [0.4, 2.8 / 4])
    with pytest.raises(InvalidInput):
        smoothed_rate(1, 2, 0.0)
    with pytest.raises(InvalidInput):
        smoothed_rate(1, 2, 0.4, strength=0)
    # log-odds add around the population's rate: at it, the other side's rate comes back
    np.testing.assert_allclose(rate_like_probability(0.4, [0.1, 0.7], 0.4), [0.1, 0.7])
    np.testing.assert_allclose(rate_like_probability([0.1, 0.7], 0.4, 0.4), [0.1, 0.7])
    choosy, open_ = rate_like_probability([0.1, 0.8], 0.9, 0.4)
    assert choosy < 0.9 < open_  # a choosy swiper facing a much-liked person: in between


def test_swipe_rate_score_ranks_likely_matches_first() -> None:
    newcomer = SwipeCounts(0, 0, 0, 0)
    candidates = SwipeCounts(
        likes_given=np.array([0, 8, 1, 8, 5]),
        swipes_given=np.array([0, 10, 10, 10, 10]),
        likes_received=np.array([0, 8, 8, 1, 5]),
        swipes_received=np.array([0, 10, 10, 10, 10]),
    )  # unknown; open and desired; choosy but desired; open but not desired; average
    score = swipe_rate_score(newcomer, candidates, base=0.5)
    assert np.all((score >= 0) & (score <= 1))
    assert score[0] == pytest.approx(0.5)  # nobody has swiped: the population's rate
    assert score[1] > score[4] > max(score[2], score[3])  # both sides count (harmonic)
    # with no swipes anywhere every candidate scores alike: the signal ranks nobody
    flat = swipe_rate_score(newcomer, SwipeCounts(*(np.zeros(3),) * 4), base=0.4)
    np.testing.assert_allclose(flat, 0.4)
    # the user's own first swipes move it at once: a user who likes everyone is likelier
    # to match anyone, one nobody likes back less likely
    keen = swipe_rate_score(SwipeCounts(5, 5, 0, 0), candidates, base=0.5)
    shunned = swipe_rate_score(SwipeCounts(0, 0, 0, 6), candidates, base=0.5)
    assert np.all(keen > score) and np.all(shunned < score)
    # two-sided: scoring b for a is scoring a for b
    a, b = SwipeCounts(3, 4, 1, 5), SwipeCounts(1, 6, 4, 4)
    forward = swipe_rate_score(a, SwipeCounts(*(np.array([v]) for v in b)), base=0.45)
    backward = swipe_rate_score(b, SwipeCounts(*(np.array([v]) for v in a)), base=0.45)
    np.testing.assert_allclose(forward, backward)
    product = swipe_rate_score(newcomer, candidates, base=0.5, mode="product")
    assert np.argmax(product) == 1


def test_blend_names_a_signal_that_lifts_everyone_only_where_it_sets_apart() -> None:
    signals = {
        "compatibility": np.array([0.9, 0.2, 0.1, 0.3]),
        "swipe_rates": np.array([0.5, 0.5, 0.95, 0.52]),
    }
    weights = {"compatibility": 0.15, "swipe_rates": 2.0}
    score, plain = blend(signals, weights)
    centred_score, named = blend(signals, weights, named_above_median=("swipe_rates",))
    np.testing.assert_array_equal(score, centred_score)  # the score is the same
    assert plain.tolist() == ["swipe_rates"] * 4
    assert named.tolist() == ["compatibility", "compatibility", "swipe_rates", "compatibility"]
    assert blend(signals, weights, named_above_median=("absent",))[1].tolist() == plain.tolist()


def test_the_swipe_rates_reason_keeps_a_like_private() -> None:
    assert reason_for("swipe_rates") == "a likely match"
    liked = {"liked_me": True, "shared_tags": ["hiking"]}
    assert reason_for("swipe_rates", liked) == "you both like hiking"  # their like raised it
    assert reason_for("swipe_rates", liked, reveal_likes=True) == "already likes you"
    assert BlendWeights().swipe_rates == 2.0 and BlendWeights(swipe_rates=0).swipe_rates == 0


def test_group_medians_are_each_groups_own_median() -> None:
    rng = np.random.default_rng(3)
    sizes = [0, 1, 2, 5, 6, 0, 31]
    groups = np.concatenate([[0], np.cumsum(sizes)])
    values = rng.random(groups[-1])
    values[3] = values[4]  # ties
    got = group_medians(values, groups)
    for a, b in zip(groups[:-1], groups[1:], strict=True):
        if b > a:  # an empty group has no median and no values to carry one
            assert (got[a:b] == np.median(values[a:b])).all()
    assert len(got) == len(values)


def test_blend_of_many_lists_is_each_lists_own() -> None:
    """Lists laid end to end (``groups``) blend as each alone: the score and the strongest
    signal, the median lift of ``swipe_rates`` taken within each list."""
    rng = np.random.default_rng(4)
    sizes = [3, 8, 1, 12]
    groups = np.concatenate([[0], np.cumsum(sizes)])
    signals = {name: rng.random(groups[-1]) for name in ("compatibility", "elo", "swipe_rates")}
    signals["swipe_rates"][groups[3] :] += 0.5  # the last list's people swipe more alike
    weights = {"compatibility": 1.0, "elo": 0.5, "swipe_rates": 2.0}
    score, names = blend(signals, weights, named_above_median=("swipe_rates",), groups=groups)
    for a, b in zip(groups[:-1], groups[1:], strict=True):
        alone = blend({k: v[a:b] for k, v in signals.items()}, weights,
                      named_above_median=("swipe_rates",))  # fmt: skip
        assert score[a:b].tolist() == alone[0].tolist()
        assert names[a:b].tolist() == alone[1].tolist()
    flat = blend(signals, weights, named_above_median=("swipe_rates",))[1]
    assert flat.tolist() != names.tolist()  # one median for all would name others


@pytest.mark.parametrize("radius", [None, float("nan"), 5.0, 10.0, 30.0, 200.0])
def test_distance_bands_are_distance_band_of_each(radius: float | None) -> None:
    distances = np.array([0.0, 4.99, 5.0, 9.99, 10.0, 10.01, 29.0, 49.99, 50.0, 50.01, 120.0,
                          200.0, 250.0, np.nan, np.inf])  # fmt: skip
    for chosen in (False, True):
        got = distance_bands(distances, radius, chosen)
        assert got == [distance_band(d, radius, chosen) for d in distances], (radius, chosen)


@pytest.mark.parametrize("mode", ["harmonic", "product", "min", "weighted"])
def test_swipe_rates_in_bulk_are_each_pairs_scalar_score(mode: str) -> None:
    """The in-place sigmoid and unsanitised combination a refresh block uses give every
    pair the bits the scalar path gives it; combine_probabilities is reciprocal_score on
    probabilities (and still refuses shapes that differ)."""
    rng = np.random.default_rng(9)
    n = 2_000
    given = rng.integers(0, 40, (2, n)).astype(float)
    received = rng.integers(0, 40, (2, n)).astype(float)
    user = SwipeCounts(np.minimum(given[0], given[1]), given[1], 3.0, 7.0)
    candidates = SwipeCounts(np.minimum(received[0], received[1]), received[1],
                             np.minimum(given[0], 5.0), given[0])  # fmt: skip
    bulk = swipe_rate_score(user, candidates, base=0.37, mode=mode)
    for j in range(0, n, 97):
        one = SwipeCounts(*(np.array([v[j]]) for v in candidates))
        alone = swipe_rate_score(SwipeCounts(user.likes_given[j], user.swipes_given[j], 3.0,
                                             7.0), one, base=0.37, mode=mode)  # fmt: skip
        assert alone.tobytes() == bulk[j : j + 1].tobytes()
    a, b = rng.random(n), rng.random(n)
    a[:5], b[3:8] = 0.0, 1.0
    assert combine_probabilities(a, b, mode, 0.3).tobytes() == (
        reciprocal_score(a, b, mode, 0.3).tobytes())  # fmt: skip
    with pytest.raises(InvalidInput, match="shape"):
        combine_probabilities(a, b[:-1], mode)
