"""Batched people refresh (issue 21 item 2): every person's top list, a block at a time.

The live path (:func:`~matchwise.serve.people.people_recommendations`) answers one person:
it reads the person's exclusions and admirers and checks the list against the store, three
round trips a person, hours for a million. Here one process loads what does not change
during a refresh once (the people catalogue with its candidate index, the active people
model with every catalogue row's model column), and for each block of people:

- reads their profiles and histories, what others did to them (likes, refusals, blocks)
  and, once for the block, which of their leading candidates are hidden now: four queries
  a block instead of four a person;
- draws each person's candidates from the catalogue's people index
  (:class:`~matchwise.features.people_index.PeopleIndex`: only the segments whose gender
  they seek and who seek theirs, cell by cell outward, up to ``people_candidate_budget``
  people passing the two-sided hard filters), not from everyone, with the same exclusions
  (already swiped, refused or blocked either way) as the live path, which draws the same;
- ranks them with the live path's own signals and blend, so a refreshed list is the list
  a live request computes;
- writes the block's lists in one transaction (one delete, COPY on PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS, HIDES_ACTOR_FROM_TARGET, LIKE_ACTIONS
from matchwise.db import queries
from matchwise.db.tables import Interaction
from matchwise.features.people import (
    blend,
    blend_weights,
    reason_for,
    reciprocal_score,
    unit_blend,
)
from matchwise.hashing import hash_id
from matchwise.models.heuristic import HEURISTIC_VERSION, top_by_score
from matchwise.runtime import Runtime
from matchwise.serve.online import put_lists
from matchwise.serve.people import people_model, people_signals
from matchwise.serve.recommend import route_for
from matchwise.serve.refresh import (
    _among,
    profiles_and_histories,
    users_to_refresh,
    write_caches,
)
from matchwise.serve.state import LoadedModel, PeopleCatalogue, serving_state
from matchwise.serve.types import Recommendation, RecommendationList

log = logging.getLogger(__name__)

#: People per block: one transaction, four reads and one bulk write each.
BLOCK = 1000
_INCOMING = sorted(set(LIKE_ACTIONS) | set(HIDES_ACTOR_FROM_TARGET))


def _window(top_n: int) -> int:
    """Candidates checked against the hidden set at once: the list and ten more. A hidden
    person (held, deactivated since the catalogue loaded) is rare, and when more than ten
    of a window are, the next window is read, so the list is the same whatever the window;
    a block asks PostgreSQL about ~60,000 ids instead of the live path's ~110,000."""
    return top_n + 10


@dataclass
class PeopleRefresher:
    """What one process loads once for a people refresh (see the module docstring)."""

    runtime: Runtime
    cat: PeopleCatalogue
    model: LoadedModel | None
    model_columns: np.ndarray  # model column of each catalogue row, -1 if unknown

    @classmethod
    def open(cls, runtime: Runtime) -> PeopleRefresher:
        settings, state = runtime.settings, serving_state(runtime)
        with runtime.session() as session:
            cat = state.people(session, settings.location_cell_km)
            model = people_model(state.serving(session, "people"))  # as the live path
        columns = np.full(len(cat.visible), -1, dtype=np.int64)
        if model is not None:
            index = model.trained.item_index
            columns = np.array([index.get(hash_id(settings.hash_secret, str(c)), -1)
                                for c in cat.profiles.ids], dtype=np.int64)  # fmt: skip
        cat.people_index()  # built with the catalogue; here for one made otherwise
        return cls(runtime, cat, model, columns)

    def refresh(self, user_ids: Sequence[str], top_n: int = 50,
                block: int = BLOCK, progress: Any = None) -> dict[str, Any]:  # fmt: skip
        """Refresh ``user_ids``' people lists, ``block`` people a transaction."""
        now = datetime.now(UTC)
        users = rows = 0
        for start in range(0, len(user_ids), block):
            part = list(user_ids[start : start + block])
            with self.runtime.session() as session:
                lists = self.rank_block(session, part, top_n, now)
                rows += write_caches(session, lists, "user")
            users += len(lists)
            self._to_online_cache(lists)
            if progress is not None:
                progress(len(lists))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"users": users, "rows": rows, "peak_rss_mib": round(peak, 1), "pid": os.getpid()}

    def rank_block(
        self, session: Session, user_ids: Sequence[str], top_n: int, now: datetime
    ) -> list[RecommendationList]:
        """The people lists of ``user_ids`` (those in the catalogue and the store)."""
        read = profiles_and_histories(session, user_ids)
        admirers: dict[str, set[str]] = {}
        refused: dict[str, set[str]] = {}
        stmt = select(Interaction.target_user_id, Interaction.user_id, Interaction.action)
        for among in _among(session, Interaction.target_user_id, list(read)):
            for me, other, action in session.execute(
                stmt.where(among, Interaction.action.in_(_INCOMING))
            ):
                if me is None:
                    continue
                if action in LIKE_ACTIONS:
                    admirers.setdefault(me, set()).add(other)
                if action in HIDES_ACTOR_FROM_TARGET:
                    refused.setdefault(me, set()).add(other)
        ranked = []
        for user_id in user_ids:
            if user_id not in read or user_id not in self.cat.position:
                continue
            history = read[user_id][1]
            decided = {t for t, a in zip(history.target_user_ids, history.actions, strict=True)
                       if t is not None and a in DECIDED_ACTIONS}  # fmt: skip
            ranked.append(self._rank(user_id, history, decided | refused.get(user_id, set()),
                                     admirers.get(user_id, set()), top_n))  # fmt: skip
        shown = [self.cat.profiles.ids[c][o[: _window(top_n)]] for *_, c, o in ranked if len(o)]
        first = np.unique(np.concatenate(shown)).tolist() if shown else []
        hidden = queries.hidden_candidates(session, first, "user")
        return [self._finish(session, r, hidden, top_n, now) for r in ranked]

    def _rank(
        self, user_id: str, history: queries.History, excluded: set[str],
        admirers: set[str], top_n: int,
    ) -> tuple[Any, ...]:  # fmt: skip
        settings, cat = self.runtime.settings, self.cat
        p = cat.profiles
        me = cat.position[user_id]
        gone = np.array([cat.position[o] for o in excluded if o in cat.position], np.int64)
        candidates = cat.people_index().candidates(
            p, me, cat.visible, gone, settings.people_candidate_budget
        )
        route = route_for(history.count(), settings)
        version = HEURISTIC_VERSION
        if len(candidates) == 0:
            return user_id, route, version, None, candidates, candidates
        # by catalogue row, not id: an isin over strings sorted every candidate's id
        liked_me = np.isin(candidates, [cat.position[a] for a in admirers if a in cat.position])
        model_scores = None
        if route != "cold":
            served = self._model_signals(user_id, candidates)
            if served is not None:
                version, model_scores = served
            else:
                route = "fallback"
        swipes = list(zip(history.target_user_ids, history.actions, strict=True))
        signals, soft = people_signals(cat, me, candidates, swipes, liked_me, settings,
                                       model_scores)  # fmt: skip
        score, strongest = blend(signals, self._weights(signals),
                                 named_above_median=("swipe_rates",))  # fmt: skip
        # the first window of the live order (score, then id) without sorting everyone's
        # ids; _finish sorts them all only when hidden candidates empty that window
        order = top_by_score(score, p.ids[candidates], _window(top_n))
        context = (me, signals, soft, liked_me, score, strongest)
        return user_id, route, version, context, candidates, order

    def _weights(self, signals: dict[str, np.ndarray]) -> dict[str, float]:
        """The blend's weights as the live path picks them (the pairwise model's own when it
        gave the model signals: features.people.blend_weights)."""
        served = self.model.model_type if self.model is not None and "model" in signals else None
        return blend_weights(self.runtime.settings.blend, served)

    def _model_signals(
        self, user_id: str, candidates: np.ndarray
    ) -> tuple[str, tuple[np.ndarray, np.ndarray]] | None:
        """As the live path's: P(user likes c) and the reciprocal score, read from the
        active people model by the catalogue rows' precomputed model columns."""
        loaded = self.model
        if loaded is None:
            return None
        row = loaded.user_row(self.runtime.settings.hash_secret, user_id)
        if row is None:
            return None
        cols = self.model_columns[candidates]
        known = cols >= 0
        model_p = np.zeros(len(candidates))
        reciprocal = np.zeros(len(candidates))
        if known.any():
            people_model: Any = loaded.trained.model
            p_ab, p_ba, _ = people_model.score_candidates(row, cols[known])
            model_p[known] = p_ab
            reciprocal[known] = reciprocal_score(p_ab, p_ba, self.runtime.settings.reciprocal_mode)
        return loaded.version, (model_p, reciprocal)

    def _finish(
        self, session: Session, ranked: tuple[Any, ...], hidden: set[str], top_n: int,
        now: datetime,
    ) -> RecommendationList:  # fmt: skip
        """The first ``top_n`` not hidden now, with scores and reasons as the live path gives
        them (no explanations: the cache keeps none)."""
        user_id, route, version, context, candidates, order = ranked
        if context is None:
            return RecommendationList(user_id, route, version, now, [])
        settings, p = self.runtime.settings, self.cat.profiles
        me, signals, soft, liked_me, score, strongest = context
        ids = p.ids[candidates]
        picked: list[int] = []
        start = 0
        while len(picked) < top_n and start < len(candidates):
            if start >= len(order):  # past the first window: the whole live order
                order = np.lexsort((ids, -score))
            window = order[start : start + _window(top_n)]
            gone = hidden if start == 0 else queries.hidden_candidates(
                session, [str(i) for i in ids[window]], "user")  # fmt: skip
            picked.extend(int(j) for j in window if str(ids[j]) not in gone)
            start += len(window)
        unit = unit_blend(score, list(signals), self._weights(signals))
        vocab = p.tag_vocabulary
        tags = p.tags  # rows read from its arrays: a sparse row slice costs ~20 us
        my_tags = {vocab[j] for j in tags.indices[tags.indptr[me] : tags.indptr[me + 1]]}
        radius = float(p.max_distance_km[me])
        recs = []
        for rank, pos in enumerate(picked[:top_n], start=1):
            c = candidates[pos]
            theirs = tags.indices[tags.indptr[c] : tags.indptr[c + 1]]
            shared = sorted(my_tags & {vocab[j] for j in theirs})
            context_ = {"shared_tags": shared, "distance_km": soft.distance_km[pos],
                        "radius_km": radius, "liked_me": bool(liked_me[pos])}  # fmt: skip
            reason = reason_for(strongest[pos], context_, settings.reveal_likes_in_reasons)
            recs.append(Recommendation(str(ids[pos]), "user", round(float(unit[pos]), 6), rank,
                                       reason))  # fmt: skip
        return RecommendationList(user_id, route, version, now, recs)

    def _to_online_cache(self, lists: list[RecommendationList]) -> None:
        online = self.runtime.online
        if online is None or not lists:
            return
        try:
            put_lists(online, lists, self.runtime.settings.cache_max_age_seconds, "user")
        except Exception as exc:  # the store holds the lists; readers fall back to it
            log.error("could not write %d people lists to the online cache (%s)", len(lists), exc)


def refresh_people(
    runtime: Runtime, user_ids: Sequence[str] | None = None, top_n: int = 50,
    block: int = BLOCK, progress: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Refresh the people lists of ``user_ids`` (every active user when None) in this
    process (:class:`PeopleRefresher`); the Ray driver is
    :func:`matchwise.scale.refresh_people_with_ray`."""
    users = users_to_refresh(runtime, user_ids)
    return PeopleRefresher.open(runtime).refresh(users, top_n, block, progress)
