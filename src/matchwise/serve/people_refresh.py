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

import json
import logging
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from matchwise.actions import DECIDED_ACTIONS, HIDES_ACTOR_FROM_TARGET, LIKE_ACTIONS
from matchwise.db import queries
from matchwise.db.columnar import active_people_places
from matchwise.db.tables import Interaction, User
from matchwise.features.compatibility import location_cell
from matchwise.features.people import (
    RateLogits,
    blend,
    blend_weights,
    distance_bands,
    reason_for,
    unit_blend,
)
from matchwise.models.heuristic import HEURISTIC_VERSION, top_by_score
from matchwise.runtime import Runtime, keep_freed_memory
from matchwise.serve.online import put_lists
from matchwise.serve.people import (
    block_model_signals,
    block_signals,
    catalogue_rates,
    people_model,
)
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.recommend import route_for
from matchwise.serve.refresh import (
    _among,
    profiles_and_histories,
    users_to_refresh,
    write_caches,
)
from matchwise.serve.state import LoadedModel, serving_state
from matchwise.serve.types import Recommendation, RecommendationList

log = logging.getLogger(__name__)

#: People per block: one transaction, four reads and one bulk write each.
BLOCK = 1000
#: Reasons kept for reuse, by what they say (cleared when full).
_REASONS_KEPT = 100_000
_INCOMING = sorted(set(LIKE_ACTIONS) | set(HIDES_ACTOR_FROM_TARGET))


def _window(top_n: int) -> int:
    """Candidates checked against the hidden set at once: the list and ten more. A hidden
    person (held, deactivated since the catalogue loaded) is rare, and when more than ten
    of a window are, the next window is read, so the list is the same whatever the window;
    a block asks PostgreSQL about ~60,000 ids instead of the live path's ~110,000."""
    return top_n + 10


def decided_by(history: queries.History) -> set[str]:
    """Whom a person's own history already decided on (liked, passed, blocked...)."""
    return {t for t, a in zip(history.target_user_ids, history.actions, strict=True)
            if t is not None and a in DECIDED_ACTIONS}  # fmt: skip


@dataclass
class _Person:
    """One person's list on its way through a block: candidates (catalogue rows), then
    their blend, strongest signals and the first window of the live order."""

    user_id: str
    me: int
    route: str
    version: str
    candidates: np.ndarray
    swipes: list[tuple[str | None, str]]
    liked_me: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    model_scores: tuple[np.ndarray, np.ndarray] | None = None
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unit: np.ndarray = field(default_factory=lambda: np.zeros(0))
    strongest: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distance_km: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class PeopleRefresher:
    """What one process loads once for a people refresh (see the module docstring)."""

    runtime: Runtime
    cat: PeopleCatalogue
    model: LoadedModel | None
    rates: RateLogits  # every catalogue row's running swipe rates (catalogue_rates)
    _reasons: dict[tuple[Any, ...], str] = field(default_factory=dict)  # said reasons

    @classmethod
    def open(cls, runtime: Runtime) -> PeopleRefresher:
        """Load what a refresh reads throughout, in a process that will refresh block after
        block (its allocator keeps what a block frees: :func:`keep_freed_memory`)."""
        settings, state = runtime.settings, serving_state(runtime)
        keep_freed_memory(settings.refresh_keep_freed_mib)
        with runtime.session() as session:
            cat = state.people(session, settings.location_cell_km)
            model = people_model(state.serving(session, "people"))  # as the live path
        if model is not None:  # every row's model column, hashed now rather than mid-block
            model.people_columns(cat, settings.hash_secret)
        cat.people_index()  # built with the catalogue; here for one made otherwise
        return cls(runtime, cat, model, catalogue_rates(cat))

    def refresh(self, user_ids: Sequence[str], top_n: int = 50,
                block: int = BLOCK, progress: Any = None) -> dict[str, Any]:  # fmt: skip
        """Refresh ``user_ids``' people lists, ``block`` people a transaction."""
        now = datetime.now(UTC)
        users = rows = 0
        user_ids = self._by_place(user_ids)
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

    def _by_place(self, user_ids: Sequence[str]) -> list[str]:
        """``user_ids`` by segment and distance cell, as the people index groups them
        (people not in the catalogue last): people of one segment in one cell then share
        a block and one walk of the index (:meth:`PeopleIndex.candidates_and_distances_of`)."""
        p, position = self.cat.profiles, self.cat.position
        rows = np.array([position.get(u, len(p.ids)) for u in user_ids], np.int64)
        known = rows < len(p.ids)
        at = np.where(known, rows, 0)
        order = np.lexsort((p.longitude[at], p.latitude[at], p.seeking_mask[at],
                            p.gender_bit[at], ~known))  # fmt: skip
        return [user_ids[i] for i in order.tolist()]

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
        settings, cat = self.runtime.settings, self.cat
        people = [u for u in user_ids if u in read and u in cat.position]
        rows = np.array([cat.position[u] for u in people], np.int64)
        excluded = []
        for user_id in people:
            gone = decided_by(read[user_id][1]) | refused.get(user_id, set())
            excluded.append(np.array([cat.position[o] for o in gone if o in cat.position],
                                     np.int64))  # fmt: skip
        found = cat.people_index().candidates_and_distances_of(
            cat.profiles, rows, cat.visible, excluded, settings.people_candidate_budget
        )
        ranked = [self._person(u, read[u][1], c, admirers.get(u, set()), km)
                  for u, (c, km) in zip(people, found, strict=True)]  # fmt: skip
        self._model_signals(ranked)
        lists = self._score(ranked, top_n)
        shown = [self.cat.profiles.ids[t.candidates][t.order[: _window(top_n)]]
                 for t in lists if len(t.order)]  # fmt: skip
        first = np.unique(np.concatenate(shown)).tolist() if shown else []
        hidden = queries.hidden_candidates(session, first, "user")
        return [self._finish(session, t, hidden, top_n, now) for t in lists]

    def _person(
        self, user_id: str, history: queries.History, candidates: np.ndarray,
        admirers: set[str], distance_km: np.ndarray,
    ) -> _Person:  # fmt: skip
        """One person's candidates, their distances and who of them liked the person (the
        model's signals come for the whole block after: :meth:`_model_signals`)."""
        cat = self.cat
        route = route_for(history.count(), self.runtime.settings)
        swipes = list(zip(history.target_user_ids, history.actions, strict=True))
        person = _Person(user_id, cat.position[user_id], route, HEURISTIC_VERSION, candidates,
                         swipes, distance_km=distance_km)  # fmt: skip
        if len(candidates) == 0:
            return person
        # by catalogue row, not id: an isin over strings sorted every candidate's id
        liked = [cat.position[a] for a in admirers if a in cat.position]
        person.liked_me = np.isin(candidates, liked) if liked else np.zeros(len(candidates), bool)
        return person

    def _model_signals(self, people: list[_Person]) -> None:
        """The model's two signals for every person it knows who is not cold, in one call
        for the block (:func:`~matchwise.serve.people.block_model_signals`, which the live
        path reads a person at a time); the others it does not know fall back."""
        asked = [t for t in people if t.route != "cold" and len(t.candidates)]
        if not asked:
            return
        groups = np.concatenate([[0], np.cumsum([len(t.candidates) for t in asked])])
        candidates = np.concatenate([t.candidates for t in asked])
        served = block_model_signals(self.runtime.settings, self.model,
                                     [t.user_id for t in asked], self.cat,
                                     groups.astype(np.int64), candidates)  # fmt: skip
        for person, signals in zip(asked, served, strict=True):
            if signals is None:
                person.route = "fallback"
            else:
                person.version, model_p, reciprocal = signals
                person.model_scores = (model_p, reciprocal)

    def _score(self, people: list[_Person], top_n: int) -> list[_Person]:
        """The blend of every person's candidates, computed for the block at once
        (:func:`~matchwise.serve.people.block_signals`): those the model scored together,
        then the others (their lists blend different signals)."""
        for modelled in (True, False):
            part = [t for t in people if len(t.candidates) and
                    (t.model_scores is not None) == modelled]  # fmt: skip
            if not part:
                continue
            groups = np.concatenate([[0], np.cumsum([len(t.candidates) for t in part])])
            candidates = np.concatenate([t.candidates for t in part])
            liked_me = np.concatenate([t.liked_me for t in part])
            distance_km = np.concatenate([t.distance_km for t in part])
            scores = None
            if modelled:
                scores = (np.concatenate([t.model_scores[0] for t in part]),  # type: ignore[index]
                          np.concatenate([t.model_scores[1] for t in part]))  # type: ignore[index]  # fmt: skip
            signals, _ = block_signals(
                self.cat, np.array([t.me for t in part], np.int64), groups, candidates,
                [t.swipes for t in part], liked_me, self.runtime.settings, scores, self.rates,
                distance_km,
            )  # fmt: skip
            weights = self._weights(signals)
            score, strongest = blend(signals, weights, named_above_median=("swipe_rates",),
                                     groups=groups)  # fmt: skip
            unit = unit_blend(score, list(signals), weights)
            ids = self.cat.profiles.ids
            for i, t in enumerate(part):
                at = slice(int(groups[i]), int(groups[i + 1]))
                t.score, t.unit, t.strongest = score[at], unit[at], strongest[at]
                # the first window of the live order (score, then id) without sorting
                # everyone's ids; _finish sorts them all only when hidden candidates empty it
                t.order = top_by_score(t.score, ids[t.candidates], _window(top_n))
        return people

    def _weights(self, signals: dict[str, np.ndarray]) -> dict[str, float]:
        """The blend's weights as the live path picks them (the pairwise model's own when it
        gave the model signals: features.people.blend_weights)."""
        served = self.model.model_type if self.model is not None and "model" in signals else None
        return blend_weights(self.runtime.settings.blend, served)

    def _finish(
        self, session: Session, person: _Person, hidden: set[str], top_n: int, now: datetime
    ) -> RecommendationList:
        """The first ``top_n`` not hidden now, with scores and reasons as the live path gives
        them (no explanations: the cache keeps none)."""
        t = person
        if not len(t.order):
            return RecommendationList(t.user_id, t.route, t.version, now, [])
        settings, p = self.runtime.settings, self.cat.profiles
        candidates, score, order = t.candidates, t.score, t.order
        ids = p.ids[candidates]
        picked: list[int] = []
        start = 0
        while len(picked) < top_n and start < len(candidates):
            if start >= len(order):  # past the first window: the whole live order
                order = np.lexsort((ids, -score))
            window = order[start : start + _window(top_n)]
            gone = hidden if start == 0 else queries.hidden_candidates(
                session, [str(i) for i in ids[window]], "user")  # fmt: skip
            if gone:
                picked.extend(int(j) for j in window if str(ids[j]) not in gone)
            else:  # nearly always: no one shown has been hidden since the catalogue loaded
                picked.extend(window.tolist())
            start += len(window)
        picked = picked[:top_n]
        radius = float(p.max_distance_km[t.me])
        bands = distance_bands(t.distance_km[picked], radius, bool(np.isfinite(radius)))
        shared = self._shared_tags(t.me, candidates[picked])
        recs = []
        for rank, (pos, band, both, strongest, liked, unit, candidate) in enumerate(zip(
            picked, bands, shared, t.strongest[picked].tolist(), t.liked_me[picked].tolist(),
            t.unit[picked].tolist(), ids[picked].tolist(), strict=True), start=1):  # fmt: skip
            # the reason reads the distance only through its band: said once for each
            # signal, shared tags, band and like, then looked up
            key = (strongest, both, band, liked)
            reason = self._reasons.get(key)
            if reason is None:
                context = {"shared_tags": self._tag_names(both),
                           "distance_km": t.distance_km[pos], "radius_km": radius,
                           "liked_me": liked}  # fmt: skip
                reason = reason_for(strongest, context, settings.reveal_likes_in_reasons)
                if len(self._reasons) >= _REASONS_KEPT:
                    self._reasons.clear()
                self._reasons[key] = reason
            recs.append(Recommendation(str(candidate), "user", round(unit, 6), rank, reason))
        return RecommendationList(t.user_id, t.route, t.version, now, recs)

    def _shared_tags(self, me: int, candidates: np.ndarray) -> list[Any]:
        """What each candidate shares with ``me``, as a key: the AND of their 64-bit tag
        words, or (past 64 tags) the sorted shared names themselves."""
        p = self.cat.profiles
        if p.tag_bits is not None:
            return list((p.tag_bits[candidates] & p.tag_bits[me]).tolist())
        tags, vocab = p.tags, p.tag_vocabulary
        mine = {vocab[j] for j in tags.indices[tags.indptr[me] : tags.indptr[me + 1]]}
        return [tuple(sorted(mine & {vocab[j] for j in tags.indices[tags.indptr[c] :
                                                                    tags.indptr[c + 1]]}))
                for c in candidates.tolist()]  # fmt: skip

    def _tag_names(self, shared: Any) -> list[str]:
        """A :meth:`_shared_tags` key as the sorted tag names a reason names."""
        if isinstance(shared, tuple):
            return list(shared)
        vocab = self.cat.profiles.tag_vocabulary
        return sorted(vocab[j] for j in range(len(vocab)) if (shared >> j) & 1)

    def _to_online_cache(self, lists: list[RecommendationList]) -> None:
        online = self.runtime.online
        if online is None or not lists:
            return
        try:
            put_lists(online, lists, self.runtime.settings.cache_max_age_seconds, "user")
        except Exception as exc:  # the store holds the lists; readers fall back to it
            log.error("could not write %d people lists to the online cache (%s)", len(lists), exc)


#: Users asked for by id at most; more are read with one scan of the active users.
_BY_ID = 10_000


def people_by_place(runtime: Runtime, user_ids: list[str]) -> list[str]:
    """``user_ids`` by gender, sought genders and distance cell (then id), read from the
    store: cut into chunks for Ray actors, each chunk holds whole neighbourhoods, so its
    blocks share the people index's walks (a chunk of random people shares almost none).
    Within a segment, people without a position come after those with one. Many people
    are read with one COPY on PostgreSQL (the driver's rows took ~20 s and ~1 GiB for a
    million); sought genders are compared as their JSON text (the same list written in
    another order only splits a neighbourhood, never changes a list)."""
    wanted = set(user_ids)
    columns = select(User.id, User.gender, User.seeking, User.latitude, User.longitude)
    read: dict[str, list[Any]] = {"id": [], "gender": [], "seeking": [], "lat": [], "lon": []}
    with runtime.session() as session:
        many = len(user_ids) > _BY_ID
        if many and session.get_bind().dialect.name == "postgresql":
            frame = active_people_places(session)
            frame = frame[frame["id"].isin(wanted)]
        else:
            conditions = [User.active.is_(True)] if many else _among(session, User.id, user_ids)
            for condition in conditions:
                result = session.execute(columns.where(condition)
                                         .execution_options(yield_per=50_000))  # fmt: skip
                for part in result.partitions():
                    for user_id, gender, seeking, lat, lon in part:
                        if user_id in wanted:
                            read["id"].append(user_id)
                            read["gender"].append(gender or "")
                            read["seeking"].append(json.dumps(seeking or []))
                            read["lat"].append(lat)
                            read["lon"].append(lon)
            frame = pd.DataFrame(read)
    frame["lat"], frame["lon"] = location_cell(frame["lat"].to_numpy(float),
                                               frame["lon"].to_numpy(float),
                                               runtime.settings.location_cell_km)  # fmt: skip
    frame = frame.sort_values(["gender", "seeking", "lat", "lon", "id"], na_position="last")
    ordered = frame["id"].tolist()
    return ordered + sorted(wanted - set(ordered))


def refresh_people(
    runtime: Runtime, user_ids: Sequence[str] | None = None, top_n: int = 50,
    block: int = BLOCK, progress: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Refresh the people lists of ``user_ids`` (every active user when None) in this
    process (:class:`PeopleRefresher`); the Ray driver is
    :func:`matchwise.scale.refresh_people_with_ray`."""
    users = users_to_refresh(runtime, user_ids)
    return PeopleRefresher.open(runtime).refresh(users, top_n, block, progress)
