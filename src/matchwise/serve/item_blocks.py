"""Item lists for a block of users at once (issue 16 item 4): what the batch refresh
caches, equal to what a live request computes for each of them.

The live path (:func:`~matchwise.serve.recommend.compute_for`) answers one user: the ANN
query with a filter mask, then reasons and ``Recommendation`` objects, in Python, ~15 CPU-ms
a user at a million users. Here the same steps run for a block:

- the model route (two-tower over its HNSW index): one boolean mask of the block's allowed
  items (the catalogue's business filters, less each user's decided items), one batched
  ``knn_query`` per oversampling width (the very search :meth:`HNSWIndex.query` runs for
  one user, so the same neighbours come back), each row's allowed neighbours picked with a
  cumulative sum, and the scores as the index computes them; a row the index would widen
  or answer exactly (a narrow filter) is asked of the index itself, as live;
- the heuristic (cold users, and users outside the model's window): one sparse-times-dense
  product for the block's interest scores, the block's masked top-k with ``np.partition``
  and the live tie-break by id;
- reasons from the block's shared tags (one sparse element-wise product), strings built
  once per distinct phrase.

Users whose active model has no index (EASE, a full pipeline) are computed per user by the
live function itself. Cached lists hold no explanations, so none is built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS
from matchwise.db import queries
from matchwise.index import HNSWIndex
from matchwise.models.catalog import serving_traits
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.models.heuristic import list_phrase as _list_phrase
from matchwise.runtime import Runtime
from matchwise.serve.items import (
    HEURISTIC_WEIGHTS,
    _interest_profile,
    _title,
    liked_items,
    similar_to,
)
from matchwise.serve.recommend import compute_for, route_for
from matchwise.serve.state import Catalogue, LoadedModel, serving_state
from matchwise.serve.types import Recommendation, RecommendationList, RecommendFilters

#: Users scored together by the heuristic: it holds a few users x catalogue arrays.
HEURISTIC_BLOCK = 256


@dataclass
class _Member:
    """One user of the block on one route."""

    profile: queries.Profile
    history: queries.History
    route: str
    row: int = -1  # the user's row in the model (model route)
    interest: dict[str, float] = field(default_factory=dict)


def item_lists(
    runtime: Runtime,
    session: Session,
    read: dict[str, tuple[queries.Profile, queries.History]],
    user_ids: Sequence[str],
    top_n: int,
    now: datetime,
) -> list[RecommendationList]:
    """The item lists of ``user_ids`` (those in ``read``), in that order, as
    :func:`~matchwise.serve.recommend.compute_for` computes them without filters."""
    settings, state = runtime.settings, serving_state(runtime)
    catalogue = state.catalogue(session)
    table = settings.action_table
    serving: dict[str, list[LoadedModel]] = {}
    heuristic: list[_Member] = []
    by_model: dict[int, tuple[LoadedModel, list[_Member]]] = {}
    one_by_one: list[str] = []
    for user_id in user_ids:
        if user_id not in read:
            continue
        profile, history = read[user_id]
        route = route_for(history.count(), settings)
        if route == "cold":
            heuristic.append(_Member(profile, history, route))
            continue
        if route not in serving:
            serving[route] = state.serving(session, route)
        picked = _pick_model(serving[route], settings.hash_secret, user_id)
        if picked is None:
            heuristic.append(_Member(profile, history, "fallback"))
            continue
        loaded, row = picked
        if isinstance(loaded.index, HNSWIndex) and loaded.user_vectors is not None:
            by_model.setdefault(id(loaded), (loaded, []))[1].append(
                _Member(profile, history, route, row)
            )
        else:
            one_by_one.append(user_id)
    out: dict[str, RecommendationList] = {}
    for member in heuristic:
        member.interest = _interest_profile(member.profile, member.history, catalogue, table)
    cities = _Cities.of(catalogue) if heuristic else None
    for start in range(0, len(heuristic), HEURISTIC_BLOCK):  # dense users x items arrays
        assert cities is not None
        part = heuristic[start : start + HEURISTIC_BLOCK]
        for result in _heuristic_block(catalogue, part, top_n, now, cities):
            out[result.user_id] = result
    for loaded, members in by_model.values():
        for member in members:
            member.interest = _interest_profile(member.profile, member.history, catalogue, table)
        for result in _model_block(catalogue, loaded, members, top_n, now, table):
            out[result.user_id] = result
    filters = RecommendFilters()
    for user_id in one_by_one:
        profile, history = read[user_id]
        out[user_id] = compute_for(runtime, session, profile, history, top_n, "item", filters,
                                   now)  # fmt: skip
    return [out[u] for u in user_ids if u in out]


def _pick_model(
    models: list[LoadedModel], secret: str, user_id: str
) -> tuple[LoadedModel, int] | None:
    """The model :func:`~matchwise.serve.items.model_items` serves ``user_id`` with (the
    full pipeline when one serves the tier, else the best on validation NDCG@10) and the
    user's row in it; None when no active items model knows the user."""
    usable = [
        (m, row)
        for m in models
        if m.domain == "items" and (row := m.user_row(secret, user_id)) is not None
    ]
    if not usable:
        return None
    pipelines = [u for u in usable if serving_traits(u[0].model_type)[1]]
    return pipelines[0] if pipelines else max(usable, key=lambda u: u[0].validation_ndcg)


def _decided_rows(members: list[_Member], index: dict[str, int]) -> tuple[np.ndarray, ...]:
    """(member, column) pairs of every member's decided items found in ``index``."""
    who: list[int] = []
    what: list[int] = []
    for b, member in enumerate(members):
        for item in member.history.items_with(DECIDED_ACTIONS):
            j = index.get(item)
            if j is not None:
                who.append(b)
                what.append(j)
    return np.asarray(who, dtype=np.int64), np.asarray(what, dtype=np.int64)


def _interest_matrix(catalogue: Catalogue, members: list[_Member]) -> sp.csr_matrix:
    """Members x tag vocabulary: each member's interest weights (tags outside the
    catalogue's vocabulary can match no item, so they are left out)."""
    vocab = catalogue.tag_vocabulary
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for b, member in enumerate(members):
        for tag, weight in member.interest.items():
            col = vocab.get(tag)
            if col is not None:
                rows.append(b)
                cols.append(col)
                vals.append(weight)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(members), len(vocab)), dtype=np.float64)


def _shared_phrases(
    catalogue: Catalogue, interests: sp.csr_matrix, who: np.ndarray, rows: np.ndarray
) -> list[str | None]:
    """For each (member ``who[i]``, catalogue row ``rows[i]``) pair: "matches your
    interests: ..." naming the first three shared tags in name order (the vocabulary's
    order), or None when they share none."""
    if len(rows) == 0:
        return []
    vocab = np.array(sorted(catalogue.tag_vocabulary, key=catalogue.tag_vocabulary.__getitem__),
                     dtype=object)  # fmt: skip
    shared = catalogue.tag_matrix[rows].multiply(interests[who] != 0).tocsr()
    shared.eliminate_zeros()
    shared.sort_indices()
    indptr, indices = shared.indptr, shared.indices
    phrases: dict[tuple[int, ...], str] = {}
    out: list[str | None] = []
    for i in range(len(rows)):
        start, end = indptr[i], indptr[i + 1]
        if start == end:
            out.append(None)
            continue
        key = tuple(indices[start : min(end, start + 3)].tolist())
        phrase = phrases.get(key)
        if phrase is None:
            words = list(vocab[list(key)])
            phrase = phrases[key] = f"matches your interests: {_list_phrase(words)}"
        out.append(phrase)
    return out


def _optional_title(value: Any) -> str | None:
    return None if pd.isna(value) else str(value)


# --- the model route --------------------------------------------------------------------


def _block_query(
    index: HNSWIndex, queries_: np.ndarray, k: int, allowed: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query row, what ``index.query(row, k, allowed=allowed[row])`` returns
    (padding dropped): the same hnswlib search with the same oversampling, run batched."""
    n = index.size
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(queries_)
    groups: dict[int, list[int]] = {}
    counts = allowed.sum(axis=1)
    for r, n_allowed in enumerate(counts.tolist()):
        k_eff = min(k, n_allowed)
        if k_eff == 0:
            results[r] = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        elif index.searches_exactly(n_allowed, k):
            results[r] = _one(index, queries_[r : r + 1], k, allowed[r])
        else:  # as HNSWIndex._filtered: here k_eff == k, as n_allowed >= 2k
            oversample = index.oversampling(k_eff, n_allowed / n)
            groups.setdefault(oversample, []).append(r)
    vectors = index.vectors_
    assert vectors is not None
    for oversample, members in groups.items():
        sel = np.asarray(members, dtype=np.int64)
        labels, _ = index.index_.knn_query(queries_[sel], k=oversample, num_threads=1)
        labels = np.asarray(labels, dtype=np.int64)
        ok_mask = allowed[sel[:, None], labels]
        found = np.cumsum(ok_mask, axis=1)
        enough = found[:, -1] >= k
        for r in sel[~enough].tolist():  # the index widens its search, then goes exact
            results[r] = _one(index, queries_[r : r + 1], k, allowed[r])
        if not enough.any():
            continue
        rows_ok = sel[enough]
        take = ok_mask[enough] & (found[enough] <= k)
        picked = labels[enough][take].reshape(-1, k)
        scores = np.einsum("qd,qkd->qk", queries_[rows_ok], vectors[picked])
        order = np.argsort(-scores, axis=1, kind="stable")
        idx = np.take_along_axis(picked, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        for n_row, r in enumerate(rows_ok.tolist()):
            results[r] = (idx[n_row], scores[n_row])
    return [r for r in results if r is not None]


def _one(
    index: HNSWIndex, query: np.ndarray, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    idx, scores = index.query(query, k, allowed=allowed)
    keep = (idx[0] >= 0) & np.isfinite(scores[0])
    return idx[0][keep], scores[0][keep]


def _model_block(
    catalogue: Catalogue,
    loaded: LoadedModel,
    members: list[_Member],
    top_n: int,
    now: datetime,
    table: Any,
) -> list[RecommendationList]:
    """:func:`~matchwise.serve.items.model_items` for every member (one model)."""
    trained = loaded.trained
    item_ids = trained.item_ids
    rows = loaded.catalogue_rows(catalogue)
    passes = catalogue.filter_mask(now)
    base = (rows >= 0) & passes[np.maximum(rows, 0)]
    allowed = np.repeat(base[None, :], len(members), axis=0)
    who, what = _decided_rows(members, trained.item_index)
    allowed[who, what] = False
    assert loaded.index is not None and loaded.user_vectors is not None
    user_rows = np.array([m.row for m in members], dtype=np.int64)
    queries_ = np.ascontiguousarray(loaded.user_vectors[user_rows], dtype=np.float32)
    found = _block_query(loaded.index, queries_, top_n, allowed)  # type: ignore[arg-type]
    model = trained.model
    lengths = [len(idx) for idx, _ in found]
    pair_user = np.repeat(np.arange(len(members)), lengths)
    picked = np.concatenate([idx for idx, _ in found]) if found else np.zeros(0, np.int64)
    raw = np.concatenate([s for _, s in found]) if found else np.zeros(0, np.float32)
    unit = model.unit_scores(raw) if len(raw) else np.zeros(0)
    picked_rows = rows[picked]
    interests = _interest_matrix(catalogue, members)
    reasons = _shared_phrases(catalogue, interests, pair_user, picked_rows)
    titles = catalogue.titles[picked_rows]
    scores = [round(x, 6) for x in unit.astype(np.float64).tolist()]
    ids = item_ids[picked].astype(str).tolist() if len(picked) else []
    out = []
    start = 0
    for b, member in enumerate(members):
        end = start + lengths[b]
        missing = [i for i in range(start, end) if reasons[i] is None]
        if missing:
            similar = _similar_reasons(catalogue, loaded, rows, member, picked[missing], table)
            for i, reason in zip(missing, similar, strict=True):
                reasons[i] = reason
        recs = [
            Recommendation(ids[i], "item", scores[i], i - start + 1, reasons[i] or "",
                           _optional_title(titles[i]))
            for i in range(start, end)
        ]  # fmt: skip
        out.append(RecommendationList(member.profile.id, member.route, loaded.version, now, recs))
        start = end
    return out


def _similar_reasons(
    catalogue: Catalogue,
    loaded: LoadedModel,
    rows: np.ndarray,
    member: _Member,
    candidates: np.ndarray,
    table: Any,
) -> list[str]:
    """The live path's second and third reasons for candidates sharing no interest: "similar
    to" the liked item most like it (by the same vector product), else the model's."""
    item_index = loaded.trained.item_index
    recent = liked_items(member.history, table)[-50:]
    liked = np.array([item_index[i] for i in recent if i in item_index], dtype=np.int64)
    vectors = loaded.item_vectors
    titles = [_title(catalogue, rows[k]) for k in liked]
    folded = [None if t is None else t.casefold() for t in titles]
    out = []
    for j in candidates.tolist():
        own = (_title(catalogue, rows[j]) or "").casefold()
        similar = similar_to(j, own, liked, titles, folded, vectors)
        out.append(similar or "liked by people with tastes like yours")
    return out


# --- the heuristic ----------------------------------------------------------------------


@dataclass
class _Cities:
    """The catalogue's cities as integer codes: a block compares ints, not strings."""

    rows: np.ndarray  # each catalogue row's city code
    codes: dict[str, int]

    @classmethod
    def of(cls, catalogue: Catalogue) -> _Cities:
        names, rows = np.unique(catalogue.city_lc.astype(str), return_inverse=True)
        return cls(rows.ravel(), {str(n): i for i, n in enumerate(names)})

    def code(self, city: str | None) -> int:
        """The code of ``city`` (lower-cased, as the live path compares); -1 for a city
        no item is in, -2 for none (an item with no city never matches "no city")."""
        return self.codes.get(city.lower(), -1) if city else -2


def _heuristic_block(
    catalogue: Catalogue, members: list[_Member], top_n: int, now: datetime, cities: _Cities
) -> list[RecommendationList]:
    """:func:`~matchwise.serve.items.heuristic_items` for every member."""
    if not len(catalogue):
        return [_empty(m, now) for m in members]
    keep = np.repeat(catalogue.filter_mask(now)[None, :], len(members), axis=0)
    who, what = _decided_rows(members, catalogue.position)
    keep[who, what] = False
    interests = _interest_matrix(catalogue, members)
    # one sparse-times-dense product for the block, then as the live path per row
    raw = np.ascontiguousarray(np.asarray(catalogue.tag_matrix @ interests.T.toarray()).T)
    raw *= catalogue.tag_norm
    tops = raw.max(axis=1)  # over the whole catalogue, as the live path normalises
    positive = tops > 0
    score = raw  # in place from here: the live path's sums, in its order
    score /= np.where(positive, tops, 1.0)[:, None]
    score[~positive] = 0.0
    score *= HEURISTIC_WEIGHTS["interests"]
    pop = catalogue.popularity
    score += HEURISTIC_WEIGHTS["popularity"] * np.asarray(pop, dtype=np.float64)
    codes = np.array([cities.code(m.profile.city) for m in members])
    same_city = cities.rows[None, :] == codes[:, None]  # a member without a city: code -2
    np.add(score, HEURISTIC_WEIGHTS["city"], out=score, where=same_city)  # + 0.0 elsewhere
    stamp = np.datetime64(pd.Timestamp(now).tz_convert("UTC").tz_localize(None), "ns")
    days_ahead = (catalogue.starts - stamp) / np.timedelta64(1, "D")
    soon = np.where(np.isnan(days_ahead), 0.0, np.exp(-np.clip(days_ahead, 0, None) / 30.0))
    score += HEURISTIC_WEIGHTS["upcoming"] * np.asarray(soon, dtype=np.float64)
    # the live tie-break: the k best scores, ties by id (top_by_score over the kept rows)
    neg = np.where(keep, -score, np.inf)
    n_keep = keep.sum(axis=1)
    k = min(top_n, neg.shape[1])
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1] if k > 0 else np.zeros(len(members))
    picks: list[np.ndarray] = []
    for b in range(len(members)):
        if n_keep[b] == 0:
            picks.append(np.zeros(0, np.int64))
            continue
        row = neg[b]
        cut = np.flatnonzero(keep[b]) if top_n >= n_keep[b] else np.flatnonzero(row <= kth[b])
        picks.append(cut[np.lexsort((catalogue.ids[cut], row[cut]))][:top_n])
    lengths = [len(p) for p in picks]
    pair_user = np.repeat(np.arange(len(members)), lengths)
    picked = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    shared = _shared_phrases(catalogue, interests, pair_user, picked)
    city_pair = same_city[pair_user, picked]
    pop_pair = pop[picked] > 0
    fallback = np.where(city_pair & pop_pair, "popular in your city",
                        np.where(city_pair, "in your city",
                                 np.where(pop_pair, "popular right now",
                                          "something new to discover"))).tolist()  # fmt: skip
    scores = [round(x, 6) for x in score[pair_user, picked].tolist()]
    ids = catalogue.ids[picked].tolist()
    titles = catalogue.titles[picked]
    out = []
    start = 0
    for b, member in enumerate(members):
        end = start + lengths[b]
        recs = [
            Recommendation(ids[i], "item", scores[i], i - start + 1, shared[i] or fallback[i],
                           _optional_title(titles[i]))
            for i in range(start, end)
        ]  # fmt: skip
        out.append(RecommendationList(member.profile.id, member.route, HEURISTIC_VERSION, now,
                                      recs))  # fmt: skip
        start = end
    return out


def _empty(member: _Member, now: datetime) -> RecommendationList:
    return RecommendationList(member.profile.id, member.route, HEURISTIC_VERSION, now, [])
