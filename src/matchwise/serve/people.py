"""People for a user (dating): hard filters both ways, then Patra's weighted blend with
the reciprocal model's two-sided scores and the running swipe rates; a reason per person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from matchwise.actions import LIKE_ACTIONS, SWIPE_ACTIONS
from matchwise.db import queries
from matchwise.features.compatibility import (
    SoftScores,
    soft_scores,
)
from matchwise.features.people import (
    RateLogits,
    SwipeCounts,
    bio_similarity,
    blend,
    blend_bounds,
    blend_contributions,
    blend_weights,
    interaction_adjustment,
    rates_match_score,
    reason_for,
    reciprocal_score,
    swipe_rate_logits,
    unit_blend,
)
from matchwise.models.elo import league_score
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.state import LoadedModel
from matchwise.serve.types import Ask, Recommendation, RecommendationList, explanation
from matchwise.settings import Settings


def people_recommendations(ask: Ask) -> RecommendationList:
    """People who fit the user's wishes and whose wishes the user fits (hard filters on
    both sides), ranked by Patra's weighted blend: the reciprocal model when one is active
    and knows the user (warm/hot), compatibility, bio similarity, swipe adjustment, Elo
    league, popularity and the running swipe rates (:func:`score_people`). The reason
    names the strongest signal."""
    route = ask.route  # the reciprocal model missing turns it into fallback
    cat = ask.state.people(ask.session, ask.settings.location_cell_km, must_have=ask.user.id)
    p = cat.profiles
    me = cat.position[ask.user.id]
    excluded = queries.excluded_people(ask.session, ask.user.id)
    gone = np.array([cat.position[o] for o in excluded if o in cat.position], dtype=np.int64)
    allowed = cat.visible
    if ask.filters.city:
        allowed = allowed & (cat.city_lc == ask.filters.city.lower())
    candidates, distance_km = cat.people_index().candidates_and_distances(
        p, me, allowed, gone, ask.settings.people_candidate_budget
    )
    version = HEURISTIC_VERSION
    if len(candidates) == 0:
        return RecommendationList(ask.user.id, route, version, ask.now, [])

    admirers = queries.received_by(ask.session, ask.user.id, sorted(LIKE_ACTIONS))
    liked_me = np.isin(p.ids[candidates], list(admirers))
    model_scores, model_type = None, None
    if route != "cold":
        models = ([] if ask.model is None else [ask.model]) if ask.pinned else (
            ask.state.serving(ask.session, "people"))  # fmt: skip
        served = _reciprocal_signals(ask.settings, models, ask.user.id, cat, candidates)
        if served is not None:
            version, model_p, reciprocal = served
            model_scores = (model_p, reciprocal)
            model_type = getattr(people_model(models), "model_type", None)  # what served
        else:
            route = "fallback"
    swipes = list(zip(ask.history.target_user_ids, ask.history.actions, strict=True))
    signals, soft = people_signals(cat, me, candidates, swipes, liked_me, ask.settings,
                                   model_scores, distance_km)  # fmt: skip
    weights = blend_weights(ask.settings.blend, model_type)  # the pairwise model leads
    score, strongest = blend(signals, weights, named_above_median=("swipe_rates",))
    unit = unit_blend(score, list(signals), weights)
    parts = blend_contributions(signals, weights)
    lo, hi = blend_bounds(list(signals), weights)
    scale = f"(raw - {lo:g}) / ({hi:g} - {lo:g}): between the lowest and highest blend"
    order = np.lexsort((p.ids[candidates], -score))
    limit = ask.limit
    if ask.only is not None:  # these candidates alone, each scored as in the whole list
        order = order[np.isin(p.ids[candidates][order], list(ask.only))]
        limit = len(ask.only)
    order = _visible_now(ask.session, order, p.ids[candidates], "user", limit)
    vocab = p.tag_vocabulary
    my_tags = {vocab[j] for j in p.tags[me].indices}
    radius = float(p.max_distance_km[me])  # NaN: the user chose none (reasons use a default)
    recs = []
    for rank, pos in enumerate(order, start=1):
        c = candidates[pos]
        shared = sorted(my_tags & {vocab[j] for j in p.tags[c].indices})
        context = {"shared_tags": shared, "distance_km": soft.distance_km[pos],
                   "radius_km": radius, "liked_me": bool(liked_me[pos])}  # fmt: skip
        reason = reason_for(strongest[pos], context, ask.settings.reveal_likes_in_reasons)
        why = explanation({n: v[pos] for n, v in parts.items()}, unit[pos], scale)
        recs.append(Recommendation(str(p.ids[c]), "user", round(float(unit[pos]), 6), rank,
                                   reason, explanation=why))  # fmt: skip
    return RecommendationList(ask.user.id, route, version, ask.now, recs)


def score_people(
    cat: PeopleCatalogue,
    me: int,
    candidates: np.ndarray,
    my_swipes: list[tuple[str | None, str]],
    liked_me: np.ndarray,
    settings: Settings,
    model_scores: tuple[np.ndarray, np.ndarray] | None = None,
    model_type: str | None = None,
) -> tuple[np.ndarray, np.ndarray, SoftScores]:
    """The blend's score of each candidate (catalogue rows ``candidates``) for the person
    at row ``me``, each candidate's strongest signal, and the soft compatibility scores.

    Pure arithmetic on what serving has read: the catalogue, the user's interactions
    (``my_swipes``: target user id or None, action), who already liked them
    (``liked_me``, one flag per candidate) and, when a people model serves, its
    P(user likes c) and reciprocal score (``model_scores``), and which model type gave
    them (``model_type``: the weights are :func:`~matchwise.features.people.blend_weights`'
    for it). The Speed Dating benchmark scores with this same function. The score is the
    blend's own (weights times signals); serving shows it on [0, 1]
    (:func:`~matchwise.features.people.unit_blend`).
    """
    signals, soft = people_signals(cat, me, candidates, my_swipes, liked_me, settings,
                                   model_scores)  # fmt: skip
    weights = blend_weights(settings.blend, model_type if model_scores is not None else None)
    score, strongest = blend(signals, weights, named_above_median=("swipe_rates",))
    return score, strongest, soft


def people_signals(
    cat: PeopleCatalogue,
    me: int,
    candidates: np.ndarray,
    my_swipes: list[tuple[str | None, str]],
    liked_me: np.ndarray,
    settings: Settings,
    model_scores: tuple[np.ndarray, np.ndarray] | None = None,
    distance_km: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], SoftScores]:
    """The blend's signals for each candidate (arguments as :func:`score_people`'s), each
    in its range (:data:`~matchwise.features.people.SIGNAL_RANGES`), and the soft
    compatibility scores: :func:`block_signals` for one person, so a list ranked alone
    and one ranked in a refresh block are the same to the bit."""
    people, groups = np.array([me], dtype=np.int64), np.array([0, len(candidates)])
    return block_signals(cat, people, groups, candidates, [my_swipes], liked_me, settings,
                         model_scores, distance_km=distance_km)  # fmt: skip


def block_signals(
    cat: PeopleCatalogue,
    people: np.ndarray,
    groups: np.ndarray,
    candidates: np.ndarray,
    swipes: Sequence[list[tuple[str | None, str]]],
    liked_me: np.ndarray,
    settings: Settings,
    model_scores: tuple[np.ndarray, np.ndarray] | None = None,
    rates: RateLogits | None = None,
    distance_km: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], SoftScores]:
    """:func:`people_signals` for many people at once: person ``people[i]``'s candidates
    are ``candidates[groups[i]:groups[i + 1]]`` (``liked_me`` and ``model_scores`` laid
    out alike, ``swipes[i]`` their interactions). Every signal is computed pair by pair,
    a list's own normalisation within the list, so a block costs a few array passes
    instead of a few dozen small ones a person. ``rates``: every catalogue row's
    :func:`catalogue_rates`, when the caller keeps them (a refresh); the same numbers
    otherwise. ``distance_km``: each pair's distance, laid out alike, when the people
    index gave it (:meth:`~matchwise.features.people_index.PeopleIndex.candidates_and_distances`);
    the same numbers as taken here otherwise."""
    p = cat.profiles
    owner = np.repeat(np.arange(len(people)), np.diff(groups))  # each pair's person
    me = people[owner]  # each pair's person's catalogue row
    soft = soft_scores(p, me, candidates, distance_km=distance_km)
    received = cat.swipes_received[candidates]
    signals: dict[str, np.ndarray] = {
        "compatibility": soft.total,
        "elo": league_score(cat.elo[candidates], cat.elo[me], received=received),
        "popularity": _normalise_lists(np.log1p(cat.likes_received[candidates]), groups),
    }
    vectors = cat.bio_vectors()
    if vectors is not None and vectors.shape[1] > 1:
        bio, interaction = [], []
        for i, person in enumerate(people.tolist()):
            part = slice(int(groups[i]), int(groups[i + 1]))
            b, adjustment = _bio_signals(cat, vectors, person, candidates[part], swipes[i],
                                         liked_me[part], settings)  # fmt: skip
            bio.append(b)
            interaction.append(adjustment)
        signals["bio"] = np.concatenate(bio) if bio else np.zeros(0)
        signals["interaction"] = np.concatenate(interaction) if interaction else np.zeros(0)
    else:
        signals["interaction"] = settings.liked_me_boost * liked_me.astype(float)
    if model_scores is not None:
        signals["model"], signals["reciprocal"] = model_scores
    signals["swipe_rates"] = swipe_signal(cat, people, owner, candidates, _given(swipes),
                                          settings.reciprocal_mode, rates)  # fmt: skip
    return signals, soft


def _bio_signals(
    cat: PeopleCatalogue, vectors: np.ndarray, me: int, candidates: np.ndarray,
    my_swipes: list[tuple[str | None, str]], liked_me: np.ndarray, settings: Settings,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One person's bio similarity and swipe adjustment (Patra's bio_match and
    reject_superlike_like)."""
    liked = [cat.position[t] for t, a in my_swipes if t in cat.position and a in LIKE_ACTIONS]
    rejected = [cat.position[t] for t, a in my_swipes
                if t in cat.position and a in ("pass", "reject", "dislike")]  # fmt: skip
    bio = np.clip(bio_similarity(vectors[me], vectors[candidates]), 0.0, 1.0)
    adjustment = interaction_adjustment(
        vectors[candidates],
        vectors[liked] if liked else None,
        vectors[rejected] if rejected else None,
        liked_me,
        liked_me_bonus=settings.liked_me_boost,
    )
    return bio, adjustment


def _normalise_lists(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each list's values over its largest (all zero where that is not positive), lists
    ``values[groups[i]:groups[i + 1]]``: :func:`~matchwise.models.heuristic.normalise`
    of each alone."""
    sizes = np.diff(groups)
    full = sizes > 0
    top = np.zeros(len(sizes))
    if full.any():
        top[full] = np.maximum.reduceat(values, groups[:-1][full])
    each = np.repeat(top, sizes)
    return np.divide(values, each, out=np.zeros_like(values, dtype=np.float64), where=each > 0)


def _given(swipes: Sequence[list[tuple[str | None, str]]]) -> np.ndarray:
    """``(likes given, swipes given)`` of each person on people, from their interactions
    (read with the request, so each like or pass counts at once): shape ``(2, people)``."""
    counts = np.zeros((2, len(swipes)))
    for i, mine in enumerate(swipes):
        on_people = [a for t, a in mine if t is not None and a in SWIPE_ACTIONS]
        counts[0, i] = sum(a in LIKE_ACTIONS for a in on_people)
        counts[1, i] = len(on_people)
    return counts


def catalogue_rates(cat: PeopleCatalogue, rows: np.ndarray | None = None) -> RateLogits:
    """The running swipe rates of catalogue ``rows`` (every row when None) as log-odds
    (:func:`~matchwise.features.people.swipe_rate_logits` towards the catalogue's like
    rate): a candidate's are the same in every list."""
    at = slice(None) if rows is None else rows
    counts = SwipeCounts(likes_given=cat.likes_given[at], swipes_given=cat.swipes_given[at],
                         likes_received=cat.likes_received[at],
                         swipes_received=cat.swipes_received[at])  # fmt: skip
    return swipe_rate_logits(counts, cat.like_rate)


def swipe_signal(
    cat: PeopleCatalogue,
    people: np.ndarray,
    owner: np.ndarray,
    candidates: np.ndarray,
    given: np.ndarray,
    mode: str,
    rates: RateLogits | None = None,
) -> np.ndarray:
    """The running swipe rates of each pair's person and candidate as one two-sided score
    (:func:`~matchwise.features.people.swipe_rate_score`); pair ``j`` is person
    ``people[owner[j]]`` and catalogue row ``candidates[j]``.

    The people's own swipes (``given``: their likes and swipes on people, shape
    ``(2, len(people))``, counted from their history read with this request, so each like
    or pass they make counts at once) and what others gave and received, from the people
    catalogue (reloaded within ``max_age`` seconds, as Elo ratings are). Rates are taken
    once a person and once a candidate (``rates``: every row's, precomputed by the
    caller), then paired.
    """
    mine = swipe_rate_logits(SwipeCounts(likes_given=given[0], swipes_given=given[1],
                                         likes_received=cat.likes_received[people],
                                         swipes_received=cat.swipes_received[people]),
                             cat.like_rate)  # fmt: skip
    user = RateLogits(yes=mine.yes[owner], liked=mine.liked[owner])
    if rates is None:
        others = catalogue_rates(cat, candidates)
    else:
        others = RateLogits(yes=rates.yes[candidates], liked=rates.liked[candidates])
    return rates_match_score(user, others, cat.like_rate, mode)


def _visible_now(
    session: Session, order: np.ndarray, ids: np.ndarray, kind: str, limit: int
) -> np.ndarray:
    """The first ``limit`` of ``order`` that are still shown right now.

    Catalogues are cached for seconds; moderation and deactivation must take effect at
    once, so the final list is checked against the store (one small query).
    """
    out: list[int] = []
    start = 0
    while len(out) < limit and start < len(order):
        window = order[start : start + 2 * limit + 10]
        hidden = queries.hidden_candidates(session, [str(i) for i in ids[window]], kind)
        out.extend(int(j) for j in window if str(ids[j]) not in hidden)
        start += len(window)
    return np.asarray(out[:limit], dtype=np.int64)


def people_model(models: list[LoadedModel]) -> LoadedModel | None:
    """The people model serving reads among ``models``: the first of the people domain,
    the pairwise model first when it is among them (the one the Speed Dating benchmark
    measures). The batched refresh picks it the same way."""
    people_models = sorted((m for m in models if m.domain == "people"),
                           key=lambda m: m.model_type != "pairwise")  # fmt: skip
    return people_models[0] if people_models else None


def _reciprocal_signals(
    settings: Settings,
    models: list[LoadedModel],
    user_id: str,
    cat: PeopleCatalogue,
    candidates: np.ndarray,
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """P(user likes c) and the reciprocal score from the first people model of
    ``models`` (the active ones whose class serves ``people``, or an experiment arm's),
    the pairwise model first when it is among them (the one the Speed Dating benchmark
    measures), or None."""
    return model_signals(settings, people_model(models), user_id, cat, candidates)


def model_signals(
    settings: Settings,
    loaded: LoadedModel | None,
    user_id: str,
    cat: PeopleCatalogue,
    candidates: np.ndarray,
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The people model ``loaded``'s version, P(user likes c) and reciprocal score of
    each of ``candidates`` (catalogue rows; 0 where the model does not know one), or None
    when there is no model or it does not know the user: :func:`block_model_signals` for
    one person, so the live path and a batched refresh read the same numbers."""
    groups = np.array([0, len(candidates)], np.int64)
    return block_model_signals(settings, loaded, [user_id], cat, groups, candidates)[0]


def block_model_signals(
    settings: Settings,
    loaded: LoadedModel | None,
    user_ids: Sequence[str],
    cat: PeopleCatalogue,
    groups: np.ndarray,
    candidates: np.ndarray,
) -> list[tuple[str, np.ndarray, np.ndarray] | None]:
    """:func:`model_signals` of many people, ``user_ids[i]``'s candidates being
    ``candidates[groups[i]:groups[i + 1]]``: the model scores every known pair of the
    block in one call (``block_pair_probabilities``) and the reciprocal score is taken
    once, where a call a person cost a batched refresh ~0.2 ms a person."""
    out: list[tuple[str, np.ndarray, np.ndarray] | None] = [None] * len(user_ids)
    if loaded is None:
        return out
    rows = [loaded.user_row(settings.hash_secret, u) for u in user_ids]
    known_users = [i for i, r in enumerate(rows) if r is not None]
    if not known_users:
        return out
    cols = loaded.people_columns(cat, settings.hash_secret)
    parts = [slice(int(groups[i]), int(groups[i + 1])) for i in known_users]
    own = [cols[candidates[part]] for part in parts]
    known = [c >= 0 for c in own]
    sizes = [int(k.sum()) for k in known]
    scorer: Any = loaded.trained.model  # a people model scores pairs
    p_ab, p_ba = scorer.block_pair_probabilities(
        np.array([rows[i] for i in known_users], np.int64),
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        np.concatenate([c[k] for c, k in zip(own, known, strict=True)]).astype(np.int64),
    )
    reciprocal = reciprocal_score(p_ab, p_ba, settings.reciprocal_mode)
    at = 0
    for i, k, size in zip(known_users, known, sizes, strict=True):
        model_p, both = np.zeros(len(k)), np.zeros(len(k))
        model_p[k], both[k] = p_ab[at : at + size], reciprocal[at : at + size]
        out[i] = (loaded.version, model_p, both)
        at += size
    return out
