"""People-domain signals for one user against a candidate set (Patra's bio_match and
reject_superlike_like, seed 001's reciprocal matcher, running swipe rates), vectorised,
plus the weighted blend and the short reason each recommendation carries.

Every function takes arrays and returns arrays; none reads the store. Signals the blend
combines are meant to lie in [0, 1] (the interaction adjustment in [-1, 1]): weights from
``matchwise.yaml`` (:class:`matchwise.settings.BlendWeights`) then mean what they say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from matchwise.errors import InvalidInput

__all__ = [
    "RATE_PRIOR_SWIPES",
    "RECIPROCAL_MODES",
    "RateLogits",
    "SwipeCounts",
    "bio_similarity",
    "blend",
    "blend_bounds",
    "blend_contributions",
    "blend_weights",
    "combine_probabilities",
    "cosine_rows",
    "distance_band",
    "distance_bands",
    "group_medians",
    "interaction_adjustment",
    "like_rate",
    "rate_like_probability",
    "rates_match_score",
    "reason_for",
    "reciprocal_score",
    "smoothed_rate",
    "swipe_rate_logits",
    "swipe_rate_score",
    "unit_blend",
]

ReciprocalMode = Literal["harmonic", "product", "min", "weighted"]
RECIPROCAL_MODES: tuple[str, ...] = ("harmonic", "product", "min", "weighted")
_EPS = 1e-12


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero (or non-finite) rows stay zero instead of NaN."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    v = np.where(np.isfinite(v), v, 0.0)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > _EPS)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b``; zero vectors give 0."""
    a2, b2 = _unit_rows(a), _unit_rows(b)
    if a2.shape[1] != b2.shape[1]:
        raise InvalidInput(f"vector sizes differ: {a2.shape[1]} and {b2.shape[1]}")
    return np.clip(a2 @ b2.T, -1.0, 1.0)


def bio_similarity(user_vec: np.ndarray, cand_vecs: np.ndarray) -> np.ndarray:
    """Cosine between the user's bio embedding and each candidate's (Patra's bio_match).

    A missing bio is a zero vector and scores 0 against everyone: no NaN, no crash.
    """
    cands = np.asarray(cand_vecs, dtype=np.float64)
    if cands.ndim != 2:
        raise InvalidInput(f"cand_vecs must be 2-D (candidates x dims), got shape {cands.shape}")
    if len(cands) == 0:
        return np.zeros(0)
    return cosine_rows(np.asarray(user_vec).ravel()[None, :], cands)[0]


def _mean_similarity(
    cand_vecs: np.ndarray, reference: np.ndarray | None, weights: np.ndarray | None
) -> np.ndarray:
    """Weighted mean cosine of each candidate to a reference set (0 when the set is empty)."""
    n = len(cand_vecs)
    if reference is None:
        return np.zeros(n)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.size == 0:
        return np.zeros(n)
    ref = ref.reshape(-1, cand_vecs.shape[1]) if ref.ndim == 1 else ref
    sims = cosine_rows(cand_vecs, ref)
    w = np.ones(len(ref)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(ref),):
        raise InvalidInput("weights must have one value per reference vector")
    total = w.sum()
    return sims @ w / total if total > 0 else np.zeros(n)


def interaction_adjustment(
    cand_vecs: np.ndarray,
    liked_vecs: np.ndarray | None,
    rejected_vecs: np.ndarray | None,
    liked_me_mask: np.ndarray | None = None,
    *,
    liked_weights: np.ndarray | None = None,
    like_strength: float = 1.0,
    reject_strength: float = 1.0,
    liked_me_bonus: float = 0.5,
) -> np.ndarray:
    """Patra's swipe adjustment, in [-1, 1]: like what you liked, not what you rejected.

    Each candidate gains its mean cosine similarity to the people the user liked (pass
    ``liked_weights``, e.g. 1.5 for superlikes, to count some likes more) and loses its
    mean similarity to the people the user rejected, each half-weighted so the sum stays
    in [-1, 1]; a candidate who already liked the user gains ``liked_me_bonus`` (a like
    back is a match). Vectors are any embedding: bios, the two-tower's, tag vectors.
    """
    cands = np.asarray(cand_vecs, dtype=np.float64)
    if cands.ndim != 2:
        raise InvalidInput(f"cand_vecs must be 2-D (candidates x dims), got shape {cands.shape}")
    up = _mean_similarity(cands, liked_vecs, liked_weights)
    down = _mean_similarity(cands, rejected_vecs, None)
    adjustment = 0.5 * (like_strength * up - reject_strength * down)
    if liked_me_mask is not None:
        mask = np.asarray(liked_me_mask, dtype=bool)
        if mask.shape != (len(cands),):
            raise InvalidInput("liked_me_mask must have one flag per candidate")
        adjustment = adjustment + liked_me_bonus * mask
    return np.clip(adjustment, -1.0, 1.0)


def reciprocal_score(
    p_ab: np.ndarray,
    p_ba: np.ndarray,
    mode: ReciprocalMode | str = "harmonic",
    weight: float = 0.5,
) -> np.ndarray:
    """Combine P(a likes b) and P(b likes a) into one two-sided score in [0, 1].

    ``harmonic`` (default) is high only when both are (a candidate who would never like
    the user back sinks); ``product`` is P(match) if the two are independent; ``min`` is
    the strictest; ``weighted`` is the weighted geometric mean ``p_ab^w * p_ba^(1-w)``
    (``weight=0.5`` ranks like ``product``; 1 ignores the other side). Inputs are clipped
    to [0, 1]; NaN counts as 0.
    """
    a = np.clip(np.nan_to_num(np.asarray(p_ab, dtype=np.float64), nan=0.0), 0.0, 1.0)
    b = np.clip(np.nan_to_num(np.asarray(p_ba, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return combine_probabilities(a, b, mode, weight)


def combine_probabilities(
    a: np.ndarray, b: np.ndarray, mode: ReciprocalMode | str = "harmonic", weight: float = 0.5
) -> np.ndarray:
    """:func:`reciprocal_score` of probabilities already in [0, 1] with no NaN (float64):
    the same numbers without the two copies that make them so (a refresh block's swipe
    rates are ~10^6 pairs, each direction a sigmoid)."""
    if a.shape != b.shape:
        raise InvalidInput(f"p_ab and p_ba differ in shape: {a.shape} and {b.shape}")
    if mode == "harmonic":
        total = a + b
        return np.divide(2.0 * a * b, total, out=np.zeros_like(total), where=total > _EPS)
    if mode == "product":
        return a * b
    if mode == "min":
        return np.minimum(a, b)
    if mode == "weighted":
        if not 0.0 <= weight <= 1.0:
            raise InvalidInput(f"reciprocal weight must be in [0, 1], got {weight}")
        return np.power(a, weight) * np.power(b, 1.0 - weight)  # 0**0 = 1: weight 1 ignores b
    raise InvalidInput(
        f"unknown reciprocal mode {mode!r}; use one of {', '.join(RECIPROCAL_MODES)}"
    )


#: Pseudo-swipes at the population's like rate added to each person's own before a rate is
#: taken: with none of their own, a person's rate is the population's; after a handful,
#: it is mostly theirs (two: a person who liked 3 of 4 reads as 0.67 where the population
#: likes 40%).
RATE_PRIOR_SWIPES = 2.0
_RATE_FLOOR = 1e-3


class SwipeCounts(NamedTuple):
    """What a person did and received so far: ``likes_given`` of ``swipes_given`` (how
    choosy they are), ``likes_received`` of ``swipes_received`` (how desired). Scalars or
    arrays (one entry per person); a like counts as a swipe too."""

    likes_given: Any
    swipes_given: Any
    likes_received: Any
    swipes_received: Any


def like_rate(likes: Any, swipes: Any, default: float = 0.5) -> float:
    """The population's like rate: all likes over all swipes (``default`` when there are
    none), kept inside (0, 1) so log-odds stay finite."""
    total = float(np.nansum(np.asarray(swipes, dtype=np.float64)))
    if total <= 0:
        return float(default)
    rate = float(np.nansum(np.asarray(likes, dtype=np.float64))) / total
    return float(np.clip(rate, _RATE_FLOOR, 1.0 - _RATE_FLOOR))


def smoothed_rate(
    yes: Any, total: Any, prior: float, strength: float = RATE_PRIOR_SWIPES
) -> np.ndarray:
    """``(yes + strength · prior) / (total + strength)``: a running rate that starts at
    ``prior`` and moves towards the person's own share with every swipe."""
    if strength <= 0:
        raise InvalidInput(f"the rate prior must be positive, got {strength}")
    if not 0.0 < prior < 1.0:
        raise InvalidInput(f"the prior rate must be in (0, 1), got {prior}")
    n = np.maximum(np.nan_to_num(np.asarray(total, dtype=np.float64)), 0.0)
    y = np.clip(np.nan_to_num(np.asarray(yes, dtype=np.float64)), 0.0, n)
    return (y + strength * prior) / (n + strength)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _RATE_FLOOR, 1.0 - _RATE_FLOOR)
    return np.log(q / (1.0 - q))


def _from_logits(first: np.ndarray, second: np.ndarray, base: float) -> np.ndarray:
    """The probability whose log-odds are ``first + second - logit(base)``, in [0, 1]
    (a sigmoid as ``0.5 * (1 + tanh(x / 2))``): each step in place on arrays, the same
    operations in the same order as on scalars, so the same numbers."""
    logits = first + second
    offset = _logit(np.asarray(float(base)))
    if np.ndim(logits) == 0:
        return 0.5 * (1.0 + np.tanh(0.5 * (logits - offset)))
    logits -= offset
    logits *= 0.5
    np.tanh(logits, out=logits)
    logits += 1.0
    logits *= 0.5
    return logits


def rate_like_probability(yes_rate: Any, received_rate: Any, base: float) -> np.ndarray:
    """P(a likes b) from a's yes-rate as a swiper and b's received-yes-rate, both smoothed.

    Their log-odds add around the population's rate ``base`` (the Rasch or Bradley-Terry
    form): ``logit P = logit(yes_a) + logit(received_b) - logit(base)``. A swiper at the
    population's rate gives b's received rate back, a person received at it gives a's
    yes-rate back; a choosy swiper facing a much-liked person lands in between.
    """
    return _from_logits(_logit(np.asarray(yes_rate, dtype=np.float64)),
                        _logit(np.asarray(received_rate, dtype=np.float64)), base)  # fmt: skip


class RateLogits(NamedTuple):
    """A person's smoothed running rates as log-odds (scalars or one entry per person):
    ``yes`` as a swiper, ``liked`` as the one swiped on. A person's are the same in every
    pair they are part of, so a block of lists takes them once a person
    (:func:`swipe_rate_logits`), not once a pair."""

    yes: Any
    liked: Any


def _rate_prior(base: float) -> float:
    return float(np.clip(base, _RATE_FLOOR, 1.0 - _RATE_FLOOR))


def swipe_rate_logits(
    counts: SwipeCounts, base: float, strength: float = RATE_PRIOR_SWIPES
) -> RateLogits:
    """``counts``' rates, each :func:`smoothed_rate` towards ``base``, as log-odds."""
    prior = _rate_prior(base)
    yes = smoothed_rate(counts.likes_given, counts.swipes_given, prior, strength)
    liked = smoothed_rate(counts.likes_received, counts.swipes_received, prior, strength)
    return RateLogits(_logit(yes), _logit(liked))


def rates_match_score(
    user: RateLogits, candidates: RateLogits, base: float, mode: ReciprocalMode | str = "harmonic"
) -> np.ndarray:
    """:func:`swipe_rate_score` from rates already taken as log-odds
    (:func:`swipe_rate_logits`, with the same ``base``)."""
    prior = _rate_prior(base)
    p_uc = _from_logits(np.asarray(user.yes, dtype=np.float64),
                        np.asarray(candidates.liked, dtype=np.float64), prior)  # fmt: skip
    p_cu = _from_logits(np.asarray(candidates.yes, dtype=np.float64),
                        np.asarray(user.liked, dtype=np.float64), prior)  # fmt: skip
    p_uc, p_cu = np.broadcast_arrays(p_uc, p_cu)
    return combine_probabilities(p_uc, p_cu, mode)  # two sigmoids: in [0, 1], no NaN


def swipe_rate_score(
    user: SwipeCounts,
    candidates: SwipeCounts,
    base: float,
    mode: ReciprocalMode | str = "harmonic",
    strength: float = RATE_PRIOR_SWIPES,
) -> np.ndarray:
    """How likely a match is from running swipe rates alone, in [0, 1].

    P(user likes c) from the user's yes-rate and c's received rate, P(c likes user) from
    c's yes-rate and the user's received rate (:func:`rate_like_probability`, every rate
    :func:`smoothed_rate` towards ``base``), combined like the model's two directions
    (:func:`reciprocal_score` with ``mode``). It learns from the first swipes: each like or
    pass, given or received, moves it at once, with no model retrained; a person with no
    swipes yet sits at the population's rate. ``user`` holds scalars (or arrays aligned
    with the candidates), ``candidates`` one entry per candidate.
    """
    return rates_match_score(swipe_rate_logits(user, base, strength),
                             swipe_rate_logits(candidates, base, strength), base, mode)  # fmt: skip


#: Blend signals whose range is not [0, 1] (the swipe adjustment may push down).
SIGNAL_RANGES: dict[str, tuple[float, float]] = {"interaction": (-1.0, 1.0)}


def _weight_of(weights: Mapping[str, float] | Any) -> Mapping[str, float]:
    return weights.model_dump() if hasattr(weights, "model_dump") else weights


def blend_contributions(
    signals: Mapping[str, np.ndarray], weights: Mapping[str, float] | Any
) -> dict[str, np.ndarray]:
    """Each signal's part of the blend's score, ``weight · signal`` (NaN counts 0): the
    parts add up to :func:`blend`'s score."""
    w = _weight_of(weights)
    return {name: float(w.get(name, 0.0)) * np.nan_to_num(np.asarray(v, dtype=np.float64),
                                                           nan=0.0)
            for name, v in signals.items()}  # fmt: skip


def blend_bounds(names: Sequence[str], weights: Mapping[str, float] | Any) -> tuple[float, float]:
    """The lowest and highest score a blend of the signals ``names`` can give."""
    w = _weight_of(weights)
    lo = hi = 0.0
    for name in names:
        low, high = SIGNAL_RANGES.get(name, (0.0, 1.0))
        lo += float(w.get(name, 0.0)) * low
        hi += float(w.get(name, 0.0)) * high
    return lo, hi


def unit_blend(
    score: np.ndarray, names: Sequence[str], weights: Mapping[str, float] | Any
) -> np.ndarray:
    """The blend's score on the served scale: where it lies between the lowest and the
    highest score these signals can give, in [0, 1] (an increasing linear map, so the
    order is the blend's)."""
    lo, hi = blend_bounds(names, weights)
    raw = np.asarray(score, dtype=np.float64)
    if hi <= lo:
        return np.zeros_like(raw)
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0)


#: Model types whose reciprocal signal weighs ``BlendWeights.pairwise`` in place of
#: ``BlendWeights.reciprocal`` (see :func:`blend_weights`).
PAIRWISE_MODELS: frozenset[str] = frozenset({"pairwise"})


def blend_weights(weights: Mapping[str, float] | Any, model_type: str | None) -> dict[str, float]:
    """The blend's weights for a list whose ``model`` and ``reciprocal`` signals come from
    a people model of ``model_type`` (None: no model signal).

    The default weights were chosen for the reciprocal model and the running swipe rates
    (which dominate them, ``swipe_rates`` 2). The pairwise model already reads each
    person's swipes as fitted choosiness and desirability, and ranks held-out pairs better
    than the blend around it; when it serves, its two-sided score weighs ``pairwise``
    instead of ``reciprocal`` (chosen on training pairs only, benchmarks/RESULTS.md), so it
    leads and the other signals mostly break its near-ties. Every other weight is kept, so
    a list without a model signal (a cold user) is ranked as before.
    """
    w = {name: float(v) for name, v in _weight_of(weights).items()}
    if model_type in PAIRWISE_MODELS and "pairwise" in w:
        w["reciprocal"] = w["pairwise"]
    return w


def blend(
    signals: Mapping[str, np.ndarray],
    weights: Mapping[str, float] | Any,
    *,
    named_above_median: Sequence[str] = (),
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Patra's weighted blend: ``Σ weight_s · signal_s`` and each candidate's strongest signal.

    ``weights`` is a mapping or a pydantic model (``BlendWeights``); a signal without a
    weight counts 0, a weight without a signal is ignored, NaN counts 0. The strongest
    signal is the one contributing most to the candidate's score (first in ``signals``'
    order on ties); where nothing contributes positively it is ``"model"`` when present,
    else the first signal. A signal in ``named_above_median`` counts whole in the score but,
    for naming, only by how far it lifts the candidate above the list's median (over the
    last axis): one that lifts every candidate alike (the running swipe rates) is named
    only for those it sets apart. ``groups`` (offsets, one more than there are lists) holds
    many people's lists end to end along a 1-D signal, the median then each list's own
    (:func:`group_medians`). Returns ``(score, names)`` with ``names`` an object array.
    """
    if hasattr(weights, "model_dump"):
        weights = weights.model_dump()
    if not signals:
        raise InvalidInput("blend needs at least one signal")
    names = list(signals)
    arrays = [_finite(signals[s]) for s in names]
    shape = arrays[0].shape
    for name, array in zip(names, arrays, strict=True):
        if array.shape != shape:
            raise InvalidInput(f"signal {name!r} has shape {array.shape}, expected {shape}")
    w = np.array([float(weights.get(s, 0.0)) for s in names])
    if (w < 0).any():
        raise InvalidInput("blend weights must be non-negative")
    # one signal at a time (a refresh block's signals are millions of pairs: stacking
    # them copied every one twice); the score adds them up in order, as a sum over a
    # stack of them does
    score = np.zeros(shape)
    best = np.zeros(shape, dtype=np.intp)
    top = np.zeros(shape)
    for i, (name, array) in enumerate(zip(names, arrays, strict=True)):
        contribution = array * w[i]
        score = contribution.copy() if i == 0 else np.add(score, contribution, out=score)
        if name in named_above_median and contribution.size:
            median = (np.median(contribution, axis=-1, keepdims=True) if groups is None
                      else group_medians(contribution, groups))  # fmt: skip
            contribution = np.maximum(contribution - median, 0.0)
        if i == 0:  # the first index on ties, as argmax
            top = contribution.copy()
            continue
        better = contribution > top
        best[better] = i
        np.maximum(top, contribution, out=top)
    fallback = names.index("model") if "model" in names else 0
    best = np.where(top > 0, best, fallback)
    return score, np.asarray(names, dtype=object)[best]


def _finite(values: Any) -> np.ndarray:
    """``values`` as float64, NaN as 0 (and infinities as the largest floats,
    ``np.nan_to_num``), copied only when something is not finite."""
    array = np.asarray(values, dtype=np.float64)
    return array if np.isfinite(array).all() else np.nan_to_num(array, nan=0.0)


def group_medians(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value's group median, ``values[groups[i]:groups[i + 1]]`` a group: ``np.median``
    of each group alone (a partition a group costs less than one sort of them all)."""
    starts, stops = groups[:-1].tolist(), groups[1:].tolist()
    if not np.isfinite(values).all():  # np.median's own NaN handling
        medians = [np.median(values[a:b]) if b > a else 0.0
                   for a, b in zip(starts, stops, strict=True)]  # fmt: skip
        return np.repeat(np.asarray(medians, dtype=np.float64), np.diff(groups))
    middle = np.zeros(len(starts))
    for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
        n = b - a
        if n == 0:
            continue
        half = n // 2  # the middle one, or the two around the middle (their mean)
        if n % 2:
            middle[i] = np.partition(values[a:b], half)[half]
        else:
            low, high = np.partition(values[a:b], (half - 1, half))[half - 1 : half + 1]
            middle[i] = (low + high) / 2.0
    return np.repeat(middle, np.diff(groups))


def _listing(values: Sequence[str], most: int = 2) -> str:
    items = [str(v) for v in values[:most]]
    return " and ".join(items) if len(items) <= 2 else ", ".join(items)


#: Distance bands a reason may name (upper bound in km, words): never a figure, which
#: anyone able to set their own location could use to triangulate where someone lives.
DISTANCE_BANDS: tuple[tuple[float, str], ...] = ((10.0, "lives nearby"), (50.0, "in your area"))
FAR = "within the distance you chose"
#: What "around you" means for a user who set no ``max_distance_km``: the outer edge of
#: the "in your area" band. A user's own ``max_distance_km`` replaces it.
AROUND_YOU_KM = 50.0


def distance_band(distance_km: Any, radius_km: Any = None, chosen: bool = False) -> str | None:
    """The coarse band of ``distance_km``, or None when it is unknown or beyond the user's
    radius (``radius_km``: their ``max_distance_km`` when ``chosen``, else
    :data:`AROUND_YOU_KM`): distance words are said only of people within it."""
    if distance_km is None or not np.isfinite(distance_km):
        return None
    radius = AROUND_YOU_KM if radius_km is None or not np.isfinite(radius_km) else radius_km
    if distance_km > radius:
        return None
    band = next((words for limit, words in DISTANCE_BANDS if distance_km < limit), None)
    return band or (FAR if chosen else None)


def distance_bands(
    distance_km: np.ndarray, radius_km: float | None = None, chosen: bool = False
) -> list[str | None]:
    """:func:`distance_band` of each of one user's distances, in a few array passes."""
    d = np.asarray(distance_km, dtype=np.float64)
    radius = AROUND_YOU_KM if radius_km is None or not np.isfinite(radius_km) else radius_km
    words = np.full(len(d), FAR if chosen else None, dtype=object)
    for limit, band in reversed(DISTANCE_BANDS):  # the nearest band last: it wins
        words[d < limit] = band
    words[~np.isfinite(d) | (d > radius)] = None
    return list(words.tolist())


def reason_for(
    signal_name: str, context: Mapping[str, Any] | None = None, reveal_likes: bool = False
) -> str:
    """A short human reason for a recommendation whose strongest signal is ``signal_name``.

    ``context`` may carry ``shared_tags`` (list of str), ``distance_km``, ``radius_km``
    (the user's ``max_distance_km``; unset: :data:`AROUND_YOU_KM`), ``age_gap`` and
    ``liked_me`` (bool); an unknown signal gets a neutral reason, never an error. Distances
    are named as coarse bands only, and only within the user's radius: "around you" and
    every distance word are true of the candidate or not said. A like is a private swipe:
    "already likes you" only with ``reveal_likes`` (setting ``reveal_likes_in_reasons``);
    otherwise a candidate who liked the user gets the next honest reason, one their like
    did not make true.
    """
    ctx = dict(context or {})
    shared = [t for t in ctx.get("shared_tags") or [] if t]
    radius = ctx.get("radius_km")
    chosen = radius is not None and bool(np.isfinite(radius))
    band = distance_band(ctx.get("distance_km"), radius, chosen)
    liked_me = bool(ctx.get("liked_me")) or signal_name == "liked_me"
    if liked_me and reveal_likes:
        return "already likes you"
    if liked_me and signal_name in ("interaction", "liked_me", "swipe_rates"):
        signal_name = "compatibility"  # the like lifted this signal: say what else is true
    if signal_name in ("compatibility", "shared_tags", "jaccard"):
        if shared:
            return f"you both like {_listing(shared)}"
        if band == DISTANCE_BANDS[0][1]:
            return DISTANCE_BANDS[0][1]
        return "fits what you are both looking for"
    if signal_name in ("distance", "proximity"):
        return band or "fits what you are both looking for"
    if signal_name in ("age", "age_fit"):
        return "close to you in age"
    if signal_name == "bio":
        return f"your bios have a lot in common{_also(shared)}"
    if signal_name == "interaction":
        return "similar to people you liked"
    if signal_name == "reciprocal":
        return "likes people like you"
    if signal_name in ("elo", "league"):
        return "popular with people like you"
    if signal_name == "popularity":
        return "popular around you" if band is not None else "popular right now"
    if signal_name == "swipe_rates":
        return "a likely match"
    if signal_name == "model":
        return f"picked for you{_also(shared)}"
    return "recommended for you"


def _also(shared: Sequence[str]) -> str:
    return f"; you both like {_listing(shared, 1)}" if shared else ""
