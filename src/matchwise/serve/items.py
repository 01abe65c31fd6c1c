"""Items for a user: the active model that fits the user's tier (retrieval through
the ANN index, or the full pipeline for hot users), else the content + popularity
heuristic; business filters and a true reason per item."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS
from matchwise.db import queries
from matchwise.models.catalog import serving_traits
from matchwise.models.heuristic import list_phrase as _list_phrase
from matchwise.models.heuristic import normalise as _normalise
from matchwise.models.heuristic import top_by_score
from matchwise.serve.state import ServingState
from matchwise.serve.types import Ask, Recommendation, RecommendationList, RecommendFilters

ENGAGED_ACTIONS = ["like", "favorite", "register", "apply", "interest", "attend", "share",
                   "click", "superlike"]  # fmt: skip


def model_items(ask: Ask) -> RecommendationList | None:
    """Warm: retrieval (two-tower over the ANN index); hot: the full pipeline (hybrid
    re-ranker) when one is active. None when no active model knows this user."""
    usable = [
        (loaded, row)
        for loaded in ask.state.serving(ask.session, ask.route)
        if loaded.domain == "items"
        and (row := loaded.user_row(ask.settings.hash_secret, ask.user.id)) is not None
    ]
    if not usable:
        return None
    # the full pipeline when one serves this tier (pipelines come first); otherwise the
    # model that measured best on validation NDCG@10
    pipelines = [u for u in usable if serving_traits(u[0].model_type)[1]]
    loaded, row = pipelines[0] if pipelines else max(usable, key=lambda u: u[0].validation_ndcg)
    catalogue = ask.state.catalogue(ask.session)
    item_ids = loaded.trained.item_ids
    rows = loaded.catalogue_rows(catalogue)
    passes = catalogue.filter_mask(
        ask.now,
        ask.filters.include_past,
        ask.filters.category,
        ask.filters.city,
        ask.filters.starts_after,
        ask.filters.starts_before,
    )
    allowed = (rows >= 0) & passes[np.maximum(rows, 0)]
    for item in ask.history.items_with(DECIDED_ACTIONS):
        j = loaded.trained.item_index.get(item)
        if j is not None:
            allowed[j] = False
    model = loaded.trained.model
    if loaded.index is not None and loaded.user_vectors is not None:
        query = loaded.user_vectors[row : row + 1]
        idx, scores = loaded.index.query(query, ask.limit, allowed=allowed)
        idx, scores = idx[0], scores[0]
    else:
        full = np.asarray(model.score(np.array([row])), dtype=np.float64)[0]
        full[~allowed] = -np.inf
        k = min(ask.limit, int(allowed.sum()))
        idx = np.argsort(-full, kind="stable")[:k]
        scores = full[idx]
    keep = (idx >= 0) & np.isfinite(scores)
    idx, scores = idx[keep], scores[keep]
    titles = catalogue.titles[rows[idx]]
    reasons = _model_reasons(ask.user, ask.history, catalogue, rows, idx, loaded)
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
        user_id=ask.user.id,
        route=ask.route,
        model_version=loaded.version,
        generated_at=ask.now,
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
