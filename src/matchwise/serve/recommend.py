"""The online core: the same function serves the API, the CLI and batch refreshes.

:func:`recommend` routes a user (cold / warm / hot, seed 003), takes candidates from the
active model's ANN index or the content + popularity heuristic, applies the business
filters and writes a reason per result; the per-user cache (seed 004) answers first when
fresh. :func:`cached_recommendations` is that cache step alone, without a session, for
the API's hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, literal, select
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS, LIKE_ACTIONS
from matchwise.db import driver, queries
from matchwise.db.tables import Item, User
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import (
    mutual_preference_mask,
    soft_scores,
)
from matchwise.features.people import (
    bio_similarity,
    blend,
    interaction_adjustment,
    reason_for,
    reciprocal_score,
)
from matchwise.features.text import text_cache_dir
from matchwise.hashing import hash_id
from matchwise.models.elo import league_candidates
from matchwise.runtime import Runtime
from matchwise.serve.state import HOT_MODELS, WARM_MODELS, ServingState, serving_state
from matchwise.settings import Settings

HEURISTIC_VERSION = "heuristic-1"
Kind = Literal["item", "user"]


@dataclass
class RecommendFilters:
    """Business filters a caller may add to any request."""

    category: str | None = None
    city: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    include_past: bool = False


@dataclass
class Recommendation:
    candidate_id: str
    candidate_kind: Kind
    score: float
    rank: int
    reason: str
    title: str | None = None

    def wire(self) -> dict[str, Any]:
        """The shape of ``schemas.RecommendationOut`` (API and CLI JSON)."""
        return {"candidate_id": self.candidate_id, "candidate_kind": self.candidate_kind,
                "score": self.score, "rank": self.rank, "reason": self.reason,
                "title": self.title}  # fmt: skip


@dataclass
class RecommendationList:
    user_id: str
    route: str
    model_version: str
    generated_at: datetime
    recommendations: list[Recommendation] = field(default_factory=list)


def recommend(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int | None = None,
    filters: RecommendFilters | None = None,
    kind: Kind | None = None,
    now: datetime | None = None,
    use_cache: bool | None = None,
) -> RecommendationList:
    """Ranked candidates for ``user_id``; raises NotFound for an unknown user.

    Serves the per-user cache when enabled, fresh (younger than
    ``cache_max_age_seconds``) and the request has no filters; computes live otherwise.
    """
    settings, state = runtime.settings, serving_state(runtime)
    limit, kind = resolve_request(settings, limit, kind)
    filters = filters or RecommendFilters()
    now = now or datetime.now(UTC)
    if use_cache is None:
        use_cache = settings.use_cache
    if use_cache and filters == RecommendFilters():
        cached = read_cache(session, user_id, limit, kind, settings.cache_max_age_seconds, now)
        if cached is not None:
            return cached  # cached rows imply the user exists (they cascade with it)
    user = queries.serving_profile(session, user_id)
    history = queries.history_of(session, user_id)
    route = route_for(history.count(), settings)
    if kind == "item" and route != "cold":
        served = _model_items(session, settings, state, user, history, route, limit, filters,
                              now)  # fmt: skip
        if served is not None:
            return served
        route = "fallback"  # no active model for this user: the heuristic answers
    if kind == "user":
        return people_recommendations(session, settings, state, user, history, route, limit,
                                      filters, now)  # fmt: skip
    recs = heuristic_items(session, state, user, history, limit, filters, now)
    return RecommendationList(
        user_id=user_id,
        route=route,
        model_version=HEURISTIC_VERSION,
        generated_at=now,
        recommendations=recs,
    )


def route_for(n_interactions: int, settings: Settings) -> str:
    """Seed 003's router: cold below ``cold_below``, hot above ``hot_above``, else warm."""
    if n_interactions < settings.router.cold_below:
        return "cold"
    if n_interactions > settings.router.hot_above:
        return "hot"
    return "warm"


def _model_items(
    session: Session,
    settings: Settings,
    state: ServingState,
    user: queries.Profile,
    history: queries.History,
    route: str,
    limit: int,
    filters: RecommendFilters,
    now: datetime,
) -> RecommendationList | None:
    """Warm: retrieval (two-tower over the ANN index); hot: the full pipeline (hybrid
    re-ranker) when one is active. None when no active model knows this user."""
    types = HOT_MODELS if route == "hot" else WARM_MODELS
    usable = []
    for model_type in types:
        candidate = state.model(session, model_type)
        if candidate is None or candidate.domain != "items":
            continue
        row = candidate.user_row(settings.hash_secret, user.id)
        if row is not None:
            usable.append((candidate, row))
    if not usable:
        return None
    # hot users get the full pipeline when one is active; otherwise the active model that
    # measured best on validation NDCG@10 serves
    pipeline = [u for u in usable if u[0].model_type == "hybrid"]
    loaded, row = pipeline[0] if pipeline else max(usable, key=lambda u: u[0].validation_ndcg)
    catalogue = state.catalogue(session)
    item_ids = loaded.trained.item_ids
    rows = loaded.catalogue_rows(catalogue)
    passes = catalogue.filter_mask(
        now,
        filters.include_past,
        filters.category,
        filters.city,
        filters.starts_after,
        filters.starts_before,
    )
    allowed = (rows >= 0) & passes[np.maximum(rows, 0)]
    for item in history.items_with(DECIDED_ACTIONS):
        j = loaded.trained.item_index.get(item)
        if j is not None:
            allowed[j] = False
    model = loaded.trained.model
    if loaded.index is not None and loaded.user_vectors is not None:
        query = loaded.user_vectors[row : row + 1]
        idx, scores = loaded.index.query(query, limit, allowed=allowed)
        idx, scores = idx[0], scores[0]
    else:
        full = np.asarray(model.score(np.array([row])), dtype=np.float64)[0]
        full[~allowed] = -np.inf
        k = min(limit, int(allowed.sum()))
        idx = np.argsort(-full, kind="stable")[:k]
        scores = full[idx]
    keep = (idx >= 0) & np.isfinite(scores)
    idx, scores = idx[keep], scores[keep]
    titles = catalogue.titles[rows[idx]]
    reasons = _model_reasons(user, history, catalogue, rows, idx, loaded)
    recs = [
        Recommendation(
            candidate_id=str(item_ids[j]),
            candidate_kind="item",
            score=round(float(sc), 6),
            rank=r + 1,
            reason=reasons[r],
            title=None if pd.isna(titles[r]) else str(titles[r]),
        )
        for r, (j, sc) in enumerate(zip(idx, scores, strict=True))
    ]
    return RecommendationList(
        user_id=user.id,
        route=route,
        model_version=loaded.version,
        generated_at=now,
        recommendations=recs,
    )


def _interest_profile(
    user: queries.Profile, history: queries.History, catalogue: Any
) -> dict[str, float]:
    """Tags the user stated (weight 2) plus tags of items they engaged with positively."""
    interest: dict[str, float] = {str(t).lower(): 2.0 for t in (user.tags or [])}
    for item in history.items_with(ENGAGED_ACTIONS, min_value=4)[-200:]:
        row = catalogue.position.get(item)
        if row is not None:
            for tag in catalogue.tags[row]:
                interest[tag] = interest.get(tag, 0.0) + 1.0
    return interest


def _model_reasons(
    user: queries.Profile,
    history: queries.History,
    catalogue: Any,
    rows: np.ndarray,
    picked: np.ndarray,
    loaded: Any,
) -> list[str]:
    """Why: shared interests first, then the liked item it is most like, then the model."""
    interest = _interest_profile(user, history, catalogue)
    item_index = loaded.trained.item_index
    recent = [i for i in history.item_ids if i is not None][-50:]
    liked = [item_index[i] for i in recent if i in item_index]
    vectors = loaded.item_vectors
    out = []
    for j in picked:
        row = rows[j]
        shared = sorted(catalogue.tags[row] & interest.keys()) if row >= 0 else []
        if shared:
            out.append(f"matches your interests: {_list_phrase(shared[:3])}")
            continue
        if vectors is not None and liked:
            best = liked[int(np.argmax(vectors[liked] @ vectors[j]))]
            title = catalogue.titles[rows[best]] if rows[best] >= 0 else None
            if title and not pd.isna(title):
                out.append(f"similar to {title}")
                continue
        out.append("liked by people with tastes like yours")
    return out


def _cache_query(kind: Kind) -> Any:
    """Built once per kind: the hot path reuses the statement instead of rebuilding it."""
    target = User if kind == "user" else Item
    visible: Any = target.active.is_(True)
    if kind == "user":
        visible = visible & (User.moderation_status == "ok")
    return (
        select(
            CachedRow.candidate_id,
            CachedRow.score,
            CachedRow.reason,
            CachedRow.model_version,
            CachedRow.generated_at,
            Item.title if kind == "item" else literal(None),
        )
        .join(target, target.id == CachedRow.candidate_id)
        .where(
            CachedRow.user_id == bindparam("user_id"),
            CachedRow.candidate_kind == kind,
            visible,
            queries.not_excluded(kind, bindparam("user_id"), CachedRow.candidate_id),
        )
        .order_by(CachedRow.rank)
        .limit(bindparam("limit"))
    )


_CACHE_QUERIES = {"item": _cache_query("item"), "user": _cache_query("user")}


def _cached_list(
    rows: list, user_id: str, kind: Kind, max_age_seconds: int, now: datetime
) -> RecommendationList | None:
    if not rows:
        return None
    generated = driver.as_utc(rows[0][4])
    assert generated is not None
    if (now - generated).total_seconds() > max_age_seconds:
        return None
    return RecommendationList(
        user_id=user_id,
        route="cache",
        model_version=rows[0][3],
        generated_at=generated,
        recommendations=[
            Recommendation(
                candidate_id=candidate,
                candidate_kind=kind,
                score=score,
                rank=rank,
                reason=reason or "",
                title=title,
            )
            for rank, (candidate, score, reason, _, _, title) in enumerate(rows, start=1)
        ],
    )


def read_cache(
    session: Session, user_id: str, limit: int, kind: Kind, max_age_seconds: int, now: datetime
) -> RecommendationList | None:
    """The cached list when it exists and is fresh; None otherwise. One query: candidates
    deactivated or held by moderation since the list was computed, those the user has
    decided on since, and people who refused the user are dropped in SQL."""
    values = {"user_id": user_id, "limit": limit}
    rows = driver.rows(session.connection(), _CACHE_QUERIES[kind], values)
    return _cached_list(rows, user_id, kind, max_age_seconds, now)


def read_cache_from(
    engine: Engine,
    user_id: str,
    limit: int,
    kind: Kind,
    max_age_seconds: int,
    now: datetime | None = None,
) -> RecommendationList | None:
    """:func:`read_cache` on a pooled connection of its own, without a session: what the
    API's cached path runs (on SQLite straight on the event loop, see ``api.routes``)."""
    rows = driver.rows_from(engine, _CACHE_QUERIES[kind], {"user_id": user_id, "limit": limit})
    return _cached_list(rows, user_id, kind, max_age_seconds, now or datetime.now(UTC))


def cacheable(
    settings: Settings,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
) -> tuple[int, Kind] | None:
    """The (limit, kind) a cache may answer this request with, or None when it must be
    computed live (cache off, or filters given)."""
    if not settings.use_cache or (filters is not None and filters != RecommendFilters()):
        return None
    return resolve_request(settings, limit, kind)


def resolve_request(
    settings: Settings, limit: int | None = None, kind: Kind | None = None
) -> tuple[int, Kind]:
    """The list length (default ``default_top_n``, 1-1000) and candidate kind (default:
    the configured domain's) of a request."""
    limit = limit or settings.default_top_n
    if limit < 1 or limit > 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    return limit, kind or ("user" if settings.domain == "people" else "item")


def cached_recommendations(
    engine: Engine,
    settings: Settings,
    user_id: str,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
) -> RecommendationList | None:
    """What :func:`recommend` would serve from the cache, or None when it would compute
    live (cache off, filters given, no fresh list). Needs no session."""
    request = cacheable(settings, limit, kind, filters)
    if request is None:
        return None
    return read_cache_from(engine, user_id, *request, settings.cache_max_age_seconds)


def top_by_score(score: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties broken by id.

    Only the candidates that can make the cut are sorted: a string sort over the whole
    catalogue would cost more than the scoring itself.
    """
    if k < len(score):
        kth = np.partition(-score, k - 1)[k - 1]
        cut = np.flatnonzero(-score <= kth)
    else:
        cut = np.arange(len(score))
    return cut[np.lexsort((ids[cut], -score[cut]))][:k]


def _normalise(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values, dtype=np.float64)


def _list_phrase(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


ENGAGED_ACTIONS = ["like", "favorite", "register", "apply", "interest", "attend", "share",
                   "click", "superlike"]  # fmt: skip


def heuristic_items(
    session: Session,
    state: ServingState,
    user: queries.Profile,
    history: queries.History,
    limit: int,
    filters: RecommendFilters,
    now: datetime,
) -> list[Recommendation]:
    """Content + popularity (seed 004's fallback): interests, city, popularity, upcoming."""
    catalogue = state.catalogue(session)
    if not len(catalogue):
        return []
    keep = catalogue.filter_mask(now, filters.include_past, filters.category, filters.city,
                                 filters.starts_after, filters.starts_before)  # fmt: skip
    for item in history.items_with(DECIDED_ACTIONS):
        row = catalogue.position.get(item)
        if row is not None:
            keep[row] = False
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        return []
    interest = _interest_profile(user, history, catalogue)
    weights = np.zeros(len(catalogue.tag_vocabulary))
    for tag, weight in interest.items():
        col = catalogue.tag_vocabulary.get(tag)
        if col is not None:
            weights[col] = weight
    # over the whole catalogue, then picked: a sparse mat-vec is cheaper than slicing rows
    tag_score = _normalise((catalogue.tag_matrix @ weights) * catalogue.tag_norm)[rows]
    pop = catalogue.popularity[rows]
    same_city = (catalogue.city_lc[rows] == (user.city or "").lower()) & bool(user.city)
    starts = catalogue.starts[rows]
    stamp = np.datetime64(pd.Timestamp(now).tz_convert("UTC").tz_localize(None), "ns")
    days_ahead = (starts - stamp) / np.timedelta64(1, "D")
    soon = np.where(np.isnan(days_ahead), 0.0, np.exp(-np.clip(days_ahead, 0, None) / 30.0))
    score = 0.5 * tag_score + 0.3 * pop + 0.15 * same_city + 0.05 * soon
    order = top_by_score(score, catalogue.ids[rows], limit)
    picked = rows[order]
    reasons: list[str] = []
    for pos, row in zip(order, picked, strict=True):
        shared = sorted(catalogue.tags[row] & interest.keys())
        if shared:
            reasons.append(f"matches your interests: {_list_phrase(shared[:3])}")
        elif same_city[pos] and pop[pos] > 0:
            reasons.append("popular in your city")
        elif same_city[pos]:
            reasons.append("in your city")
        elif pop[pos] > 0:
            reasons.append("popular right now")
        else:
            reasons.append("something new to discover")
    return [
        Recommendation(
            candidate_id=str(catalogue.ids[row]),
            candidate_kind="item",
            score=round(float(score[pos]), 6),
            rank=r + 1,
            reason=reasons[r],
            title=None if pd.isna(catalogue.titles[row]) else str(catalogue.titles[row]),
        )
        for r, (pos, row) in enumerate(zip(order, picked, strict=True))
    ]


def people_recommendations(
    session: Session,
    settings: Settings,
    state: ServingState,
    user: queries.Profile,
    history: queries.History,
    route: str,
    limit: int,
    filters: RecommendFilters,
    now: datetime,
) -> RecommendationList:
    """People who fit the user's wishes and whose wishes the user fits (hard filters on
    both sides), ranked by Patra's weighted blend: the reciprocal model when one is active
    and knows the user (warm/hot), compatibility, bio similarity, swipe adjustment, Elo
    league and popularity. The reason names the strongest signal."""
    cat = state.people(session, settings.location_cell_km, must_have=user.id)
    p = cat.profiles
    me = cat.position[user.id]
    excluded = queries.excluded_people(session, user.id) | {user.id}
    keep = cat.visible.copy()
    for other in excluded:
        j = cat.position.get(other)
        if j is not None:
            keep[j] = False
    if filters.city:
        city = filters.city.lower()
        keep &= cat.city_lc == city
    candidates = np.flatnonzero(keep)
    candidates = candidates[mutual_preference_mask(p, me, candidates)]
    version = HEURISTIC_VERSION
    if len(candidates) == 0:
        return RecommendationList(user.id, route, version, now, [])

    soft = soft_scores(p, me, candidates)
    admirers = queries.received_by(session, user.id, sorted(LIKE_ACTIONS))
    liked_me = np.isin(p.ids[candidates], list(admirers))
    league = league_candidates(
        cat.elo[candidates],
        float(cat.elo[me]),
        received=cat.swipes_received[candidates],
        seed=settings.seed,
    )
    signals: dict[str, np.ndarray] = {
        "compatibility": soft.total,
        "elo": league.score,
        "popularity": _normalise(np.log1p(cat.likes_received[candidates])),
    }
    vectors = cat.bio_vectors(text_cache_dir(settings.artifact_root))
    liked = [cat.position[t] for t, a in zip(history.target_user_ids, history.actions, strict=True)
             if t in cat.position and a in LIKE_ACTIONS]  # fmt: skip
    rejected = [cat.position[t] for t, a in zip(history.target_user_ids, history.actions,
                                                strict=True)
                if t in cat.position and a in ("pass", "reject", "dislike")]  # fmt: skip
    if vectors is not None and vectors.shape[1] > 1:
        signals["bio"] = np.clip(bio_similarity(vectors[me], vectors[candidates]), 0.0, 1.0)
        signals["interaction"] = interaction_adjustment(
            vectors[candidates],
            vectors[liked] if liked else None,
            vectors[rejected] if rejected else None,
            liked_me,
            liked_me_bonus=settings.liked_me_boost,
        )
    else:
        signals["interaction"] = settings.liked_me_boost * liked_me.astype(float)
    if route != "cold":
        served = _reciprocal_signals(session, settings, state, user.id, p.ids[candidates])
        if served is not None:
            version, model_p, reciprocal = served
            signals["model"], signals["reciprocal"] = model_p, reciprocal
        else:
            route = "fallback"
    score, strongest = blend(signals, settings.blend)
    order = np.lexsort((p.ids[candidates], -score))
    order = _visible_now(session, order, p.ids[candidates], "user", limit)
    vocab = p.tag_vocabulary
    my_tags = {vocab[j] for j in p.tags[me].indices}
    recs = []
    for rank, pos in enumerate(order, start=1):
        c = candidates[pos]
        shared = sorted(my_tags & {vocab[j] for j in p.tags[c].indices})
        context = {"shared_tags": shared, "distance_km": soft.distance_km[pos],
                   "liked_me": bool(liked_me[pos])}  # fmt: skip
        reason = reason_for(strongest[pos], context, settings.reveal_likes_in_reasons)
        recs.append(Recommendation(str(p.ids[c]), "user", round(float(score[pos]), 6), rank,
                                   reason))  # fmt: skip
    return RecommendationList(user.id, route, version, now, recs)


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


def _reciprocal_signals(
    session: Session,
    settings: Settings,
    state: ServingState,
    user_id: str,
    candidate_ids: np.ndarray,
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """P(user likes c) and the reciprocal score from the active people model, or None."""
    loaded = state.model(session, "reciprocal")
    if loaded is None or loaded.domain != "people":
        return None
    row = loaded.user_row(settings.hash_secret, user_id)
    if row is None:
        return None
    index = loaded.trained.item_index
    cols = np.array([index.get(hash_id(settings.hash_secret, c), -1) for c in candidate_ids])
    known = cols >= 0
    model_p = np.zeros(len(candidate_ids))
    reciprocal = np.zeros(len(candidate_ids))
    if known.any():
        people_model: Any = loaded.trained.model  # the reciprocal model scores pairs
        p_ab, p_ba, _ = people_model.score_candidates(row, cols[known])
        model_p[known] = p_ab
        reciprocal[known] = reciprocal_score(p_ab, p_ba, settings.reciprocal_mode)
    return loaded.version, model_p, reciprocal
