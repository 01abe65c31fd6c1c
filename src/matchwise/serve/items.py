"""Items for a user: the active model that fits the user's tier (retrieval through
the ANN index, or the full pipeline for hot users), else the content + popularity
heuristic; business filters and a true reason per item."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from matchwise.actions import DECIDED_ACTIONS, ActionRule
from matchwise.data.dataset import RATING_POSITIVE
from matchwise.db import queries
from matchwise.models.catalog import serving_traits
from matchwise.models.heuristic import list_phrase as _list_phrase
from matchwise.models.heuristic import normalise as _normalise
from matchwise.models.heuristic import top_by_score
from matchwise.serve.types import Ask, Recommendation, RecommendationList, explanation

ENGAGED_ACTIONS = ["like", "favorite", "register", "apply", "interest", "attend", "share",
                   "click", "superlike"]  # fmt: skip
#: The heuristic's signals (each in [0, 1]) and weights: they add up to 1, so its score
#: is on the served scale as it is.
HEURISTIC_WEIGHTS = {"interests": 0.5, "popularity": 0.3, "city": 0.15, "upcoming": 0.05}
HEURISTIC_SCALE = "raw (the weights add up to 1)"
#: An action whose training label (actions table) is at most this says no: pass, reject,
#: dislike, block (0) and unregister (0.1) by default.
REJECTION_LABEL = 0.2
#: A rating at or below this (of 5) is a rejection too.
LOW_RATING = 2.0


def rejected_items(history: queries.History, table: dict[str, ActionRule]) -> set[str]:
    """Items the user said no to (by the actions table's labels) or rated low: a reason
    never names them, and their tags never count as the user's interests."""
    out = set()
    for item, action, value in zip(history.item_ids, history.actions, history.values,
                                   strict=True):  # fmt: skip
        if item is None:
            continue
        rule = table.get(action)
        if action == "rate":
            if value is not None and value <= LOW_RATING:
                out.add(item)
        elif rule is not None and rule.label is not None and rule.label <= REJECTION_LABEL:
            out.add(item)
    return out


def liked_items(history: queries.History, table: dict[str, ActionRule]) -> list[str]:
    """Items the user engaged with positively (the actions table's ``positive``, or rated at
    least ``RATING_POSITIVE``) and never rejected, oldest first, each once: what a reason
    may name as "similar to"."""
    rejected = rejected_items(history, table)
    seen: dict[str, None] = {}
    for item, action, value in zip(history.item_ids, history.actions, history.values,
                                   strict=True):  # fmt: skip
        if item is None or item in rejected:
            continue
        rule = table.get(action)
        if action == "rate":
            positive = value is not None and value >= RATING_POSITIVE
        else:
            positive = rule is not None and rule.positive
        if positive:
            seen.pop(item, None)
            seen[item] = None
    return list(seen)


def model_items(ask: Ask) -> RecommendationList | None:
    """Warm: retrieval (two-tower over the ANN index); hot: the full pipeline (hybrid
    re-ranker) when one is active. None when no active model knows this user. An
    experiment arm's model (``ask.pinned``) is the only one considered."""
    models = ([] if ask.model is None else [ask.model]) if ask.pinned else (
        ask.state.serving(ask.session, ask.route))  # fmt: skip
    usable = [
        (loaded, row)
        for loaded in models
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
    limit = ask.limit
    if ask.only is not None:  # these candidates alone, each scored as in the whole list
        allowed &= np.isin(item_ids.astype(str), list(ask.only))
        limit = len(ask.only)
    model = loaded.trained.model
    if loaded.index is not None and loaded.user_vectors is not None and ask.only is None:
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
    idx, raw = idx[keep], scores[keep]
    scores = model.unit_scores(raw)  # the served scale, [0, 1]
    titles = catalogue.titles[rows[idx]]
    reasons = _model_reasons(ask, catalogue, rows, idx, loaded)
    recs = [
        Recommendation(
            candidate_id=str(item_ids[j]),
            candidate_kind="item",
            score=round(float(sc), 6),
            rank=r + 1,
            reason=reasons[r],
            title=None if pd.isna(titles[r]) else str(titles[r]),
            explanation=explanation({"model": raw[r]}, sc, model.score_scale),
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
    user: queries.Profile,
    history: queries.History,
    catalogue: Any,
    table: dict[str, ActionRule],
) -> dict[str, float]:
    """Tags the user stated (weight 2) plus tags of items they engaged with positively
    and did not reject afterwards."""
    interest: dict[str, float] = {str(t).lower(): 2.0 for t in (user.tags or [])}
    rejected = rejected_items(history, table)
    engaged = [i for i in history.items_with(ENGAGED_ACTIONS, min_value=4) if i not in rejected]
    for item in engaged[-200:]:
        row = catalogue.position.get(item)
        if row is not None:
            for tag in catalogue.tags[row]:
                interest[tag] = interest.get(tag, 0.0) + 1.0
    return interest


def _title(catalogue: Any, row: int) -> str | None:
    title = catalogue.titles[row] if row >= 0 else None
    return None if title is None or pd.isna(title) or not str(title).strip() else str(title)


def _model_reasons(
    ask: Ask, catalogue: Any, rows: np.ndarray, picked: np.ndarray, loaded: Any
) -> list[str]:
    """Why: shared interests first, then the liked item it is most like, then the model.

    "similar to X" names only an item the user engaged with positively and never
    rejected, never the candidate itself nor another item under the candidate's title
    (recurring events share one), and only when the two really are alike (cosine > 0).
    """
    table = ask.settings.action_table
    interest = _interest_profile(ask.user, ask.history, catalogue, table)
    item_index = loaded.trained.item_index
    recent = liked_items(ask.history, table)[-50:]
    liked = np.array([item_index[i] for i in recent if i in item_index], dtype=np.int64)
    vectors = loaded.item_vectors
    titles: list[str | None] | None = None  # the liked items' titles, read once if needed
    folded: list[str | None] = []
    out = []
    for j in picked:
        row = rows[j]
        shared = sorted(catalogue.tags[row] & interest.keys()) if row >= 0 else []
        if shared:
            out.append(f"matches your interests: {_list_phrase(shared[:3])}")
            continue
        own = (_title(catalogue, row) or "").casefold()
        if titles is None:
            titles = [_title(catalogue, rows[k]) for k in liked]
            folded = [None if t is None else t.casefold() for t in titles]
        similar = similar_to(j, own, liked, titles, folded, vectors)
        out.append(similar or "liked by people with tastes like yours")
    return out


def similar_to(
    j: int,
    own: str,
    liked: np.ndarray,
    titles: list[str | None],
    folded: list[str | None],
    vectors: np.ndarray | None,
) -> str | None:
    """ "similar to <title>" naming the liked item (model columns ``liked``, their titles
    and casefolded titles) whose vector is most like candidate ``j``'s, leaving out the
    candidate itself and items of its own title (``own``, casefolded); None when no such
    item has a positive product."""
    usable = [n for n, (k, t) in enumerate(zip(liked.tolist(), folded, strict=True))
              if k != j and t is not None and t != own]  # fmt: skip
    if vectors is not None and usable:
        sims = vectors[liked[usable]] @ vectors[j]
        best = int(np.argmax(sims))
        if sims[best] > 0:
            return f"similar to {titles[usable[best]]}"
    return None


def heuristic_items(ask: Ask) -> list[Recommendation]:
    """Content + popularity (seed 004's fallback): interests, city, popularity, upcoming."""
    user, history, limit, filters, now = ask.user, ask.history, ask.limit, ask.filters, ask.now
    table = ask.settings.action_table
    catalogue = ask.state.catalogue(ask.session)
    if not len(catalogue):
        return []
    keep = catalogue.filter_mask(now, filters.include_past, filters.category, filters.city,
                                 filters.starts_after, filters.starts_before)  # fmt: skip
    for item in history.items_with(DECIDED_ACTIONS):
        row = catalogue.position.get(item)
        if row is not None:
            keep[row] = False
    if ask.only is not None:  # these candidates alone, each scored as in the whole list
        keep &= np.isin(catalogue.ids, list(ask.only))
        limit = len(ask.only)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        return []
    interest = _interest_profile(user, history, catalogue, table)
    # over the whole catalogue, then picked: normalised by the best of all rows
    tag_score = _normalise(catalogue.tag_scores(interest) * catalogue.tag_norm)[rows]
    pop = catalogue.popularity[rows]
    same_city = catalogue.in_city(rows, user.city)
    starts = catalogue.starts[rows]
    stamp = np.datetime64(pd.Timestamp(now).tz_convert("UTC").tz_localize(None), "ns")
    days_ahead = (starts - stamp) / np.timedelta64(1, "D")
    soon = np.where(np.isnan(days_ahead), 0.0, np.exp(-np.clip(days_ahead, 0, None) / 30.0))
    signals = {"interests": tag_score, "popularity": pop, "city": same_city, "upcoming": soon}
    parts = {name: HEURISTIC_WEIGHTS[name] * np.asarray(v, dtype=np.float64)
             for name, v in signals.items()}  # fmt: skip
    score = parts["interests"] + parts["popularity"] + parts["city"] + parts["upcoming"]
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
            explanation=explanation(
                {n: v[pos] for n, v in parts.items()}, score[pos], HEURISTIC_SCALE
            ),  # fmt: skip
        )
        for r, (pos, row) in enumerate(zip(order, picked, strict=True))
    ]
