""" "More like this": items like an item, people like a person.

From the active model's vectors when a loaded model knows the id (the two-tower's
towers, EASE's item-item weights, ALS/BPR factors; inside a hybrid or a reciprocal
model, those of its parts) and finds something alike that passes the filters, otherwise
from co-occurrence in the interactions (people who acted positively on both). Never the
id itself, nothing that may not be shown (inactive or past items, people deactivated,
held, removed or erased), and never someone blocked either way by the person asking.
Scores are in [0, 1], higher is more alike: cosine similarity (negative ones dropped),
EASE weights over the list's largest, or the co-occurrence cosine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from matchwise.db import queries
from matchwise.db.tables import Interaction, Item
from matchwise.errors import NotFound
from matchwise.hashing import hash_id
from matchwise.runtime import Runtime
from matchwise.schemas import SimilarCandidateOut, SimilarOut
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.state import LoadedModel, ServingState, serving_state
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings

#: Where a list came from, as the answer's ``source`` says.
MODEL: Literal["model"] = "model"
CO_OCCURRENCE: Literal["co-occurrence"] = "co-occurrence"


def similar_items(
    runtime: Runtime,
    session: Session,
    item_id: str,
    limit: int = 10,
    filters: RecommendFilters | None = None,
    now: datetime | None = None,
) -> SimilarOut:
    """Active items like ``item_id`` that pass ``filters`` (past events left out unless
    ``include_past``); :class:`NotFound` for an unknown item."""
    if session.get(Item, item_id) is None:
        raise NotFound(f"unknown item {item_id!r}")
    filters = filters or RecommendFilters()
    state = serving_state(runtime)
    cat = state.catalogue(session)
    keep = cat.filter_mask(now or datetime.now(UTC), filters.include_past, filters.category,
                           filters.city, filters.starts_after, filters.starts_before)  # fmt: skip
    me = cat.position.get(item_id)
    if me is not None:
        keep[me] = False
    for loaded in _models(state, session, "items", ("hot", "warm")):
        row = loaded.trained.item_index.get(item_id)
        scores = None if row is None else _item_row(loaded, row)
        if scores is None:
            continue
        rows = loaded.catalogue_rows(cat)
        ok = (rows >= 0) & (scores > 0)
        ok[ok] &= keep[rows[ok]]
        ranked = _ranked(cat.ids[rows[ok]], scores[ok])
        if ranked:  # nothing alike passes the filters: the next source answers
            return _answer(
                session, item_id, "item", ranked, limit, loaded, cat.titles, cat.position
            )
    found = _co_items(session, runtime.settings, item_id)
    ranked = [(i, s) for i, s in found if i in cat.position and keep[cat.position[i]]]
    return _answer(session, item_id, "item", ranked, limit, None, cat.titles, cat.position)


def similar_users(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int = 10,
    viewer: str | None = None,
    city: str | None = None,
) -> SimilarOut:
    """People like ``user_id`` who may be shown, in ``city`` when given; with ``viewer``
    (a user token's user), never the viewer nor anyone blocked either way with them, and
    :class:`NotFound` for a person the viewer may not see. :class:`NotFound` for an
    unknown (or erased) person."""
    queries.get_user(session, user_id)
    settings = runtime.settings
    state = serving_state(runtime)
    people = state.people(session, settings.location_cell_km, must_have=user_id)
    keep = (people.visible if people.shown is None else people.shown).copy()
    if viewer is not None:
        shut_out = queries.blocked_between(session, viewer)
        if user_id in shut_out or queries.hidden_candidates(session, [user_id], "user"):
            raise NotFound(f"unknown user {user_id!r}")  # as for anyone they cannot see
        for other in (*shut_out, viewer):
            j = people.position.get(other)
            if j is not None:
                keep[j] = False
    keep[people.position[user_id]] = False
    if city:
        keep &= people.city_lc == city.lower()
    hashed = _hashed_positions(runtime, settings.hash_secret, people)
    me = hash_id(settings.hash_secret, user_id)
    for loaded, side in _people_sources(state, session):
        index = loaded.trained.item_index if side == "item" else loaded.trained.user_index
        row = index.get(me)
        scores = None if row is None else _side_row(loaded, side, row)
        if scores is None:
            continue
        universe = loaded.trained.item_ids if side == "item" else loaded.trained.user_ids
        rows = np.array([hashed.get(h, -1) for h in universe.tolist()], dtype=np.int64)
        ok = (rows >= 0) & (scores > 0)
        ok[ok] &= keep[rows[ok]]
        ranked = _ranked(people.profiles.ids[rows[ok]], scores[ok])
        if ranked:
            return _answer(session, user_id, "user", ranked, limit, loaded)
    found = _co_users(session, settings, user_id)
    ranked = [(u, s) for u, s in found if u in people.position and keep[people.position[u]]]
    return _answer(session, user_id, "user", ranked, limit, None)


# --- the model's vectors ---------------------------------------------------------------


def _models(
    state: ServingState, session: Session, domain: str, tiers: tuple[str, ...]
) -> Iterator[LoadedModel]:
    """The loaded active models of ``domain`` serving any of ``tiers``, full pipelines
    first, each once."""
    seen: set[str] = set()
    for tier in tiers:
        for loaded in state.serving(session, tier):
            if loaded.domain == domain and loaded.registry_id not in seen:
                seen.add(loaded.registry_id)
                yield loaded


def _people_sources(state: ServingState, session: Session) -> Iterator[tuple[LoadedModel, str]]:
    """Models that place people: a people model's candidates (people liked by the same
    people), then an items model's users (people who like the same things)."""
    for loaded in _models(state, session, "people", ("people", "hot", "warm")):
        yield loaded, "item"
    for loaded in _models(state, session, "items", ("hot", "warm")):
        yield loaded, "user"


def _item_row(loaded: LoadedModel, row: int) -> np.ndarray | None:
    if loaded.item_vectors is not None:  # the two-tower's candidate tower, computed at load
        return _cosine(loaded.item_vectors, row)
    return _similarity(loaded.trained.model, "item", row)


def _side_row(loaded: LoadedModel, side: str, row: int) -> np.ndarray | None:
    precomputed = loaded.item_vectors if side == "item" else loaded.user_vectors
    if precomputed is not None:
        return _cosine(precomputed, row)
    return _similarity(loaded.trained.model, side, row)


def _similarity(model: Any, side: str, row: int) -> np.ndarray | None:
    """Similarity of ``row`` to every row of the model's ``side`` (``item`` or ``user``),
    in [0, 1] where positive; None when the model exposes no vectors for that side."""
    if side == "item" and getattr(model, "B_", None) is not None:  # EASE
        weights = np.asarray(model.B_[row], dtype=np.float64)
        top = weights.max(initial=0.0)
        return weights / top if top > 0 else np.zeros_like(weights)
    factors = getattr(model, f"{side}_factors_", None)  # ALS, BPR
    if factors is not None:
        return _cosine(np.asarray(factors), row)
    if side == "item" and hasattr(model, "item_embeddings"):  # a two-tower inside another
        return _cosine(np.asarray(model.item_embeddings()), row)
    for part in _parts(model):
        found = _similarity(part, side, row)
        if found is not None:
            return found
    return None


def _parts(model: Any) -> list[Any]:
    """The models another is built on, in the same id universe (a reciprocal model's
    base, a hybrid's candidate generators)."""
    base = getattr(model, "base_model_", None)
    generators = getattr(model, "generators_", None) or {}
    return [m for m in (base, *generators.values()) if m is not None]


def _cosine(vectors: np.ndarray, row: int) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    return np.asarray((vectors @ vectors[row]) / (norms * norms[row]), dtype=np.float64)


@dataclass
class _HashedIds:
    """Catalogue position of each person's keyed hash, for the catalogue it was built
    from (models hold hashes, never ids)."""

    loaded_at: float = -1.0
    positions: dict[str, int] | None = None


def _hashed_positions(runtime: Runtime, secret: str, people: PeopleCatalogue) -> dict[str, int]:
    """Each person's hashed id to their catalogue row, made once per catalogue (for a
    patched one, from its ancestor's: only the rows added since are hashed)."""
    held = runtime.component(_HashedIds, _HashedIds)
    if held.positions is not None and held.loaded_at == people.loaded_at:
        return held.positions
    ids, start, positions = people.profiles.ids, 0, {}
    shared = None if held.positions is None else people.shared_rows((held.loaded_at,))
    if shared is not None and held.positions is not None:
        start, positions = shared[1], dict(held.positions)
    positions.update({hash_id(secret, str(u)): start + j
                      for j, u in enumerate(ids[start:].tolist())})  # fmt: skip
    held.positions, held.loaded_at = positions, people.loaded_at
    return positions


# --- co-occurrence ---------------------------------------------------------------------


def _positive(settings: Settings) -> list[str]:
    return sorted(a for a, rule in settings.action_table.items() if rule.positive)


def _co_items(session: Session, settings: Settings, item_id: str) -> list[tuple[str, float]]:
    """Items people acted positively on together with ``item_id``, by the cosine of
    their sets of people."""
    positive = _positive(settings)
    a, b = aliased(Interaction), aliased(Interaction)
    found = session.execute(
        select(b.item_id, func.count(func.distinct(b.user_id)))
        .join(a, a.user_id == b.user_id)
        .where(
            a.item_id == item_id,
            a.action.in_(positive),
            b.action.in_(positive),
            b.item_id.is_not(None),
            b.item_id != item_id,
        )
        .group_by(b.item_id)
    ).all()
    together = {str(k): int(n) for k, n in found}
    if not together:
        return []
    people = _degrees(session, Interaction.item_id, Interaction.user_id, positive,
                      [item_id, *together])  # fmt: skip
    return _cosines(together, people, people.get(item_id, 0))


def _co_users(session: Session, settings: Settings, user_id: str) -> list[tuple[str, float]]:
    """People who acted positively on the same items and people as ``user_id``, or were
    liked by the same people, by the cosine of those sets."""
    positive = _positive(settings)
    a, b = aliased(Interaction), aliased(Interaction)
    together: dict[str, int] = {}
    for mine, shared in ((a.item_id, b.item_id), (a.target_user_id, b.target_user_id)):
        rows = session.execute(  # liked the same things, the same people
            select(b.user_id, func.count(func.distinct(shared)))
            .join(a, mine == shared)
            .where(
                a.user_id == user_id,
                a.action.in_(positive),
                b.action.in_(positive),
                b.user_id != user_id,
            )
            .group_by(b.user_id)
        ).all()
        for other, n in rows:
            together[str(other)] = together.get(str(other), 0) + int(n)
    liked_by = session.execute(  # liked by the same people
        select(b.target_user_id, func.count(func.distinct(b.user_id)))
        .join(a, a.user_id == b.user_id)
        .where(
            a.target_user_id == user_id,
            a.action.in_(positive),
            b.action.in_(positive),
            b.target_user_id.is_not(None),
            b.target_user_id != user_id,
        )
        .group_by(b.target_user_id)
    ).all()
    for person, n in liked_by:
        together[str(person)] = together.get(str(person), 0) + int(n)
    if not together:
        return []
    ids = [user_id, *together]
    degree: dict[str, int] = {}
    for column, counted in ((Interaction.user_id, Interaction.item_id),
                            (Interaction.user_id, Interaction.target_user_id),
                            (Interaction.target_user_id, Interaction.user_id)):  # fmt: skip
        for who, n in _degrees(session, column, counted, positive, ids).items():
            degree[who] = degree.get(who, 0) + n
    return _cosines(together, degree, degree.get(user_id, 0))


def _degrees(
    session: Session, key: Any, counted: Any, actions: list[str], ids: list[str]
) -> dict[str, int]:
    """Distinct ``counted`` per ``key`` among ``ids``, over positive actions."""
    out: dict[str, int] = {}
    for chunk in queries.chunked(ids):
        rows = session.execute(
            select(key, func.count(func.distinct(counted)))
            .where(key.in_(list(chunk)), counted.is_not(None), Interaction.action.in_(actions))
            .group_by(key)
        ).all()
        out.update({str(k): int(n) for k, n in rows})
    return out


def _cosines(
    together: dict[str, int], degree: dict[str, int], mine: int
) -> list[tuple[str, float]]:
    scored = {k: n / np.sqrt(max(mine, 1) * max(degree.get(k, 0), n, 1))
              for k, n in together.items()}  # fmt: skip
    return sorted(((k, float(min(s, 1.0))) for k, s in scored.items()), key=lambda p: (-p[1], p[0]))


# --- the answer ------------------------------------------------------------------------


def _ranked(ids: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
    """Most similar first, ties by id (the same list every time)."""
    order = np.lexsort((ids, -scores))
    return [(str(ids[j]), float(min(scores[j], 1.0))) for j in order]


def _answer(
    session: Session,
    of: str,
    kind: str,
    ranked: list[tuple[str, float]],
    limit: int,
    loaded: LoadedModel | None,
    titles: np.ndarray | None = None,
    position: dict[str, int] | None = None,
) -> SimilarOut:
    """The first ``limit`` of ``ranked`` still shown right now (catalogues are cached for
    seconds; moderation, deactivation and erasure act at once: one small query)."""
    shown: list[tuple[str, float]] = []
    start = 0
    while len(shown) < limit and start < len(ranked):
        window = ranked[start : start + 2 * limit + 10]
        hidden = queries.hidden_candidates(session, [c for c, _ in window], kind)
        shown.extend(pair for pair in window if pair[0] not in hidden)
        start += len(window)
    similar = [
        SimilarCandidateOut(
            candidate_id=c,
            candidate_kind=kind,  # type: ignore[arg-type]
            score=round(s, 6),
            rank=rank,
            title=None if titles is None or position is None else titles[position[c]],
        )
        for rank, (c, s) in enumerate(shown[:limit], start=1)
    ]
    return SimilarOut(
        id=of,
        kind=kind,  # type: ignore[arg-type]
        source=MODEL if loaded is not None else CO_OCCURRENCE,
        model_type=None if loaded is None else loaded.model_type,
        model_version=None if loaded is None else loaded.version,
        similar=similar,
    )
