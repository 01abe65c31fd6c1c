"""Serving state: the active models, their ANN index and the candidate catalogue, loaded
once per process and refreshed when the registry changes.

A new active version is picked up at once when the store announces it (PostgreSQL
``NOTIFY``, see :mod:`matchwise.serve.broadcast`), else within ``check_seconds``; profiles
and items written elsewhere reload the catalogues in the background on the same notice.
If a version cannot be loaded
(missing or corrupt artifact) the previously loaded version, or the next route, keeps
serving, the load is retried in the background with exponential backoff, and
:func:`health` says ``degraded`` until it succeeds.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from matchwise import registry
from matchwise.db import queries
from matchwise.db.tables import Interaction, Item, ModelVersion, User
from matchwise.hashing import hash_id, hash_ids
from matchwise.index import HNSWIndex, VectorIndex
from matchwise.models.artifacts import TrainedModel, load_trained
from matchwise.models.catalog import serving_traits
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.runtime import Runtime, give_back_freed_memory
from matchwise.schemas import FailedModelOut, HealthOut
from matchwise.serve.background import OneAtATime
from matchwise.serve.experiments import running_experiments
from matchwise.serve.people_catalogue import PeopleCatalogue

log = logging.getLogger(__name__)

#: Model types the router uses: warm users get retrieval, hot users the full pipeline.


@dataclass
class LoadedModel:
    """A trained model plus what serving needs next to it."""

    registry_id: str
    version: str
    model_type: str
    trained: TrainedModel
    index: VectorIndex | None = None
    item_vectors: np.ndarray | None = None
    user_vectors: np.ndarray | None = None
    validation_ndcg: float = 0.0
    _rows: dict[float, np.ndarray] = field(default_factory=dict)
    _people_cols: dict[float, np.ndarray] = field(default_factory=dict)

    def catalogue_rows(self, catalogue: Catalogue) -> np.ndarray:
        """For each model item, its catalogue row (-1 if gone); cached per catalogue load
        (the serving one and the one a background reload is about to swap in)."""
        rows = self._rows.get(catalogue.loaded_at)
        if rows is None:
            rows = catalogue.rows_of(self.trained.item_ids)
            for older in sorted(self._rows)[:-1]:
                self._rows.pop(older, None)
            self._rows[catalogue.loaded_at] = rows
        return rows

    def people_columns(self, catalogue: PeopleCatalogue, secret: str) -> np.ndarray:
        """For each people-catalogue row, the person's column in this (people) model
        (-1 if it does not know them); hashed once per catalogue load, not per request —
        at 40,000 people hashing every candidate's id cost a request tens of ms."""
        cols = self._people_cols.get(catalogue.loaded_at)
        if cols is None:
            ids, index = catalogue.profiles.ids, self.trained.item_index
            shared = catalogue.shared_rows(self._people_cols)  # patched: only the new rows
            if shared is None:
                cols = model_columns(index, ids, secret)
            else:
                at, rows = shared
                cols = np.concatenate([self._people_cols[at][:rows],
                                       model_columns(index, ids[rows:], secret)])  # fmt: skip
            for older in sorted(self._people_cols)[:-1]:
                self._people_cols.pop(older, None)
            self._people_cols[catalogue.loaded_at] = cols
        return cols

    @property
    def domain(self) -> str:
        return self.trained.domain

    def user_row(self, secret: str, user_id: str) -> int | None:
        return self.trained.user_index.get(hash_id(secret, user_id))


def model_columns(index: dict[str, int], ids: np.ndarray, secret: str) -> np.ndarray:
    """Each of ``ids``' column in a model whose ``index`` maps hashed ids to columns (-1
    where the model does not know the id): the ids hashed from one keyed state
    (:func:`~matchwise.hashing.hash_ids`) and looked up together, a million in seconds."""
    if not index or not len(ids):
        return np.full(len(ids), -1, dtype=np.int64)
    hashed = hash_ids(secret, pd.Series(ids, dtype=object).astype(str)).to_numpy()
    known = pd.Index(list(index))
    at = known.get_indexer(hashed)
    columns = np.fromiter(index.values(), dtype=np.int64, count=len(index))
    return np.where(at >= 0, columns[at], -1).astype(np.int64)


def _attach_index(loaded: LoadedModel) -> LoadedModel:
    """Two-tower models serve candidates from an ANN index over the candidate tower."""
    model: Any = loaded.trained.model
    if hasattr(model, "item_embeddings"):
        vectors = np.asarray(model.item_embeddings(), dtype=np.float32)
        loaded.item_vectors = vectors
        loaded.index = HNSWIndex().build(vectors)
        # user vectors depend only on what the model was trained with: compute them once
        # here, not with a forward pass per request
        users = np.arange(len(loaded.trained.user_ids))
        loaded.user_vectors = np.concatenate(
            [np.asarray(model.user_embeddings(users[s : s + 4096]), dtype=np.float32)
             for s in range(0, len(users), 4096)]
            or [np.zeros((0, vectors.shape[1]), dtype=np.float32)]
        )  # fmt: skip
    return loaded


POPULARITY_ACTIONS = ["like", "favorite", "register", "apply", "interest", "attend", "click",
                      "rate", "share", "superlike"]  # fmt: skip


@dataclass
class Catalogue:
    """Active candidate items as arrays, so filters and features cost no per-request SQL.

    Reloaded every ``catalogue_max_age_seconds`` (popularity), and when items are written
    (at once on PostgreSQL, see :meth:`ServingState.store_changed`).
    """

    ids: np.ndarray
    titles: np.ndarray
    category_lc: np.ndarray
    city_lc: np.ndarray
    starts: np.ndarray  # datetime64[ns] UTC, NaT when the item has no start time
    tags: list[frozenset[str]]
    tag_matrix: sp.csr_matrix
    tag_vocabulary: dict[str, int]
    popularity: np.ndarray  # log1p of positive interactions, scaled to [0, 1]
    loaded_at: float
    position: dict[str, int] = field(default_factory=dict)
    tag_norm: np.ndarray = field(default_factory=lambda: np.ones(0))  # 1/sqrt(tags per item)
    _upcoming: tuple[np.datetime64, np.ndarray] | None = None

    @classmethod
    def load(cls, session: Session) -> Catalogue:
        """Plain columns from Core rows, no DataFrame: building a frame from 10,000 row
        objects holds the GIL for ~100 ms, and this runs beside live requests."""
        columns = queries.catalogue_columns(session)
        ids = np.asarray(columns["id"], dtype=str)
        tags = [frozenset(str(t).lower() for t in (v or [])) for v in columns["tags"]]
        vocab = sorted({t for ts in tags for t in ts})
        vocab_index = {t: i for i, t in enumerate(vocab)}
        rows = [r for r, ts in enumerate(tags) for _ in ts]
        cols = [vocab_index[t] for ts in tags for t in ts]
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(ids), len(vocab))
        )
        counts = queries.count_by_target(session, POPULARITY_ACTIONS, as_dict=True)
        pop = np.log1p(np.array([counts.get(i, 0) for i in columns["id"]], dtype=np.float64))
        pop = pop / pop.max() if len(pop) and pop.max() > 0 else np.zeros(len(ids))
        starts = np.array(
            [None if t is None else t.replace(tzinfo=None) for t in columns["starts_at"]],
            dtype="datetime64[ns]",
        )
        titles = np.empty(len(ids), dtype=object)
        titles[:] = columns["title"]
        return cls(
            ids=ids,
            titles=titles,
            category_lc=_lower(columns["category"]),
            city_lc=_lower(columns["city"]),
            starts=starts,
            tags=tags,
            tag_matrix=matrix,
            tag_vocabulary=vocab_index,
            popularity=pop,
            loaded_at=time.monotonic(),
            position={v: i for i, v in enumerate(ids.tolist())},
            tag_norm=1.0 / np.sqrt(np.maximum(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)),
        )

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _cities(self) -> tuple[np.ndarray, dict[str, int]]:
        codes, names = pd.factorize(self.city_lc)
        return codes, {str(name): n for n, name in enumerate(names)}

    def in_city(self, rows: np.ndarray, city: str | None) -> np.ndarray:
        """Which of ``rows`` are in ``city`` (case-insensitive; none without a city): the
        cities as integer codes, not a string comparison per row."""
        if not city:
            return np.zeros(len(rows), dtype=bool)
        codes, index = self._cities
        return codes[rows] == index.get(city.lower(), -2)

    @cached_property
    def _tag_columns(self) -> sp.csc_matrix:
        return self.tag_matrix.tocsc()

    def tag_scores(self, weights: dict[str, float]) -> np.ndarray:
        """Every row's sum of the weights of its tags (``tag_matrix`` times the weights
        as a vector), added a tag at a time: a person's few tags cost less than the
        sparse product's dispatch."""
        out = np.zeros(len(self.ids))
        columns = self._tag_columns
        for tag, weight in weights.items():
            col = self.tag_vocabulary.get(tag)
            if col is not None:
                lo, hi = columns.indptr[col], columns.indptr[col + 1]
                out[columns.indices[lo:hi]] += weight * columns.data[lo:hi]
        return out

    def _not_past(self, now: np.datetime64) -> np.ndarray:
        """Rows without a start time or starting at ``now`` or later; kept for the
        current second (every request without filters asks for it)."""
        second = now.astype("datetime64[s]")
        held = self._upcoming
        if held is None or held[0] != second:
            mask = np.isnat(self.starts) | (self.starts >= second.astype("datetime64[ns]"))
            held = self._upcoming = (second, mask)
        return held[1]

    def filter_mask(
        self,
        now: Any,
        include_past: bool = False,
        category: str | None = None,
        city: str | None = None,
        starts_after: Any = None,
        starts_before: Any = None,
    ) -> np.ndarray:
        """Which catalogue rows pass the business filters."""

        def stamp(value: Any) -> np.datetime64:
            if isinstance(value, datetime) and value.tzinfo is not None:  # without pandas
                return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "ns")
            return np.datetime64(pd.Timestamp(value).tz_convert("UTC").tz_localize(None), "ns")

        if include_past:
            keep = np.ones(len(self.ids), dtype=bool)
        else:
            keep = self._not_past(stamp(now)).copy()
        if category:
            keep &= self.category_lc == category.lower()
        if city:
            keep &= self.city_lc == city.lower()
        if starts_after is not None:
            keep &= ~np.isnat(self.starts) & (self.starts >= stamp(starts_after))
        if starts_before is not None:
            keep &= ~np.isnat(self.starts) & (self.starts <= stamp(starts_before))
        return keep

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Catalogue row of each id, -1 where the item is not (or no longer) a candidate."""
        return np.array([self.position.get(i, -1) for i in ids.tolist()], dtype=np.int64)


def _lower(values: list[str | None]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [(v or "").lower() for v in values]
    return out


@dataclass(frozen=True)
class LoadFailure:
    """An active version that would not load; retried in the background at ``next_try``."""

    registry_id: str
    version: str
    error: str
    attempts: int
    next_try: float  # time.monotonic()


class ServingState:
    """Process-wide cache of active models and the item catalogue (thread-safe)."""

    def __init__(
        self,
        store: registry.ArtifactStore,
        check_seconds: float = 10.0,
        retry_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
        catalogue_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self.catalogue_seconds = catalogue_seconds  # the catalogues' age before a reload
        self.retry_seconds = retry_seconds  # first retry of a failed load, then doubled
        self.retry_max_seconds = retry_max_seconds
        self._models: dict[str, LoadedModel | None] = {}
        self._checked: dict[str, float] = {}
        self._catalogue: Catalogue | None = None
        self._people: PeopleCatalogue | None = None
        self._background = OneAtATime()  # registry asks, model loads
        self._background_lock = threading.Lock()
        self._switch_now: set[str] = set()
        self._failed: dict[str, LoadFailure] = {}
        self._active_types: tuple[float, tuple[str, ...]] = (-1e9, ())
        self._active_versions: frozenset[str] | None = None  # as the registry last said
        self._wanted: set[str] = set()  # catalogues to (re)load in the background
        self._reloaders: set[str] = set()  # catalogues whose reloader thread runs
        self._generation = 0  # bumped by invalidate(): older background loads stop
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pinned: dict[str, tuple[float, LoadedModel | None]] = {}
        self.trims = 0  # reloads after which the freed heap went back to the kernel
        self._people_loading = threading.Lock()  # one load of the people in a request
        #: held while the people catalogue is patched and swapped: one patch at a time, and
        #: a full reload that ends re-applies the profiles written while it read
        self._people_swap = threading.Lock()
        self._patch_ids: set[str] = set()  # profiles written, for the next patch
        #: per full load of the people running, the profiles written while it reads
        self._written_meanwhile: list[set[str]] = []
        #: per catalogue, how long its last reload took and when it ended (monotonic)
        self._reload_took: dict[str, tuple[float, float]] = {}

    def active_types(self, session: Session) -> tuple[str, ...]:
        """The model types with an active version (the registry, asked every
        ``check_seconds`` and when a change is announced)."""
        checked, types = self._active_types
        if time.monotonic() - checked < self.check_seconds:
            return types
        return self._note_active(session)

    def _note_active(self, session: Session) -> tuple[str, ...]:
        versions = registry.active_versions(session)
        types = tuple(sorted(versions))
        self._active_versions = frozenset(versions.values())
        self._active_types = (time.monotonic(), types)
        return types

    def retired(self, version: str, engine: Engine) -> bool:
        """Whether a list made by ``version`` was made by a model that is no longer active
        (an activation or rollback since) and that this process no longer serves either:
        such a cached list is re-made in the background (``serve.freshness``). While the
        new version still loads, or cannot, the old one serves and its lists stay. Never
        waits on the store: what the registry last said answers, asked again in the
        background after ``check_seconds``."""
        known = self._active_versions
        if known is None or time.monotonic() - self._active_types[0] >= self.check_seconds:
            self._background.start("active-versions", lambda: self._ask_registry(engine))
        if known is None or version == HEURISTIC_VERSION or version in known:
            return False
        return all(m is None or m.version != version for m in list(self._models.values()))

    def _ask_registry(self, engine: Engine) -> None:
        try:
            with Session(bind=engine) as session:
                self._note_active(session)
        except Exception as exc:  # what was known keeps answering
            log.warning("cannot read the active versions (%s)", exc)

    def registry_changed(self, engine: Engine, model_type: str | None = None) -> None:
        """A version of ``model_type`` (None: of any type) was activated or rolled back,
        here or in another process: ask the registry now. A new version of a type this
        process serves loads in the background and takes over when ready (the old one
        serves meanwhile); any other type loads on its next request."""
        with Session(bind=engine) as session:
            self._note_active(session)
            known = set(self._models) | set(self._checked)
            for changed in sorted(known if model_type is None else known & {model_type}):
                self._checked.pop(changed, None)
                if self._models.get(changed) is not None:
                    self.model(session, changed)

    def store_changed(self, engine: Engine, kind: str, user_ids: Sequence[str] = ()) -> None:
        """Profiles (``user``) or items (``item``) were written: reload that catalogue in
        the background now, if this process has one (the stale copy serves meanwhile).
        Profiles named by ``user_ids`` are patched into the people catalogue instead
        (:meth:`PeopleCatalogue.patched`: a read of those rows, not of everyone)."""
        what, held = ("people", self._people) if kind == "user" else ("catalogue", self._catalogue)
        if kind == "user" and user_ids:
            with self._people_swap:
                for record in self._written_meanwhile:  # a load reading now may miss them
                    record.update(user_ids)
                if held is None:
                    return
                self._patch_ids.update(user_ids)
            what = "patch"
        if held is not None:
            self._reload_in_background(what, engine)

    def serving(self, session: Session, tier: str) -> list[LoadedModel]:
        """The loaded active models whose class serves ``tier`` (``warm``, ``hot``,
        ``people``), full pipelines first: how a model serves is its class's business,
        so a new model type needs no change here."""
        found = []
        for model_type in self.active_types(session):
            serves, pipeline = serving_traits(model_type)
            if tier in serves:
                loaded = self.model(session, model_type)
                if loaded is not None:
                    found.append((not pipeline, model_type, loaded))
        return [loaded for *_, loaded in sorted(found, key=lambda f: (f[0], f[1]))]

    def model(self, session: Session, model_type: str) -> LoadedModel | None:
        """The active version of ``model_type`` (None when there is none or none loads).

        The registry is checked every ``check_seconds``. A first load, or one right after
        :meth:`invalidate`, happens now; a new version noticed while another one serves
        loads in a background thread and takes over when ready, so a deployment costs no
        request seconds of loading. A version that fails to load is retried only in the
        background, with exponential backoff (``retry_seconds`` doubling up to
        ``retry_max_seconds``); meanwhile the previous version, or the next route, serves.
        """
        now = time.monotonic()
        if now - self._checked.get(model_type, -1e9) < self.check_seconds:
            return self._models.get(model_type)
        with self._lock:
            self._checked[model_type] = now
            row = registry.active_version(session, model_type)
            current = self._models.get(model_type)
            switch_now = model_type in self._switch_now
            self._switch_now.discard(model_type)
            failure = self._failed.get(model_type)
            if failure is not None and (row is None or failure.registry_id != row.id):
                self._failed.pop(model_type, None)  # the registry moved on
                failure = None
            if row is None:
                self._models[model_type] = None
                return None
            if current is not None and current.registry_id == row.id:
                self._failed.pop(model_type, None)  # a stale background attempt's record
                return current
            engine = session.get_bind()
            if failure is not None or (current is not None and not switch_now):
                self._load_in_background(model_type, row, engine)  # no-op if under way
                return current
            loaded = self._load(model_type, row, self._generation)
            if loaded is None:
                self._load_in_background(model_type, row, engine)
                return current
            self._models[model_type] = loaded
            settle_heap()
            return loaded

    def pinned(self, session: Session, version: str) -> LoadedModel | None:
        """A registry version by its version string, active or not (an experiment arm
        serves it): the active one is shared with :meth:`model`; any other is loaded
        once and kept. None when it is not in the registry or will not load (tried again
        after ``check_seconds``)."""
        held = self._pinned.get(version)
        if held is not None and (held[1] is not None or
                                 time.monotonic() - held[0] < self.check_seconds):  # fmt: skip
            return held[1]
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        if row is None:
            self._pinned[version] = (time.monotonic(), None)
            return None
        if row.is_active:
            return self.model(session, row.model_type)
        try:
            trained = load_trained(self.store.fetch(row.uri))
            measured = (row.metrics or {}).get("validation", {}).get("ndcg@10")
            loaded: LoadedModel | None = _attach_index(LoadedModel(
                row.id, row.version, row.model_type, trained,
                validation_ndcg=float(measured or 0.0)))  # fmt: skip
        except Exception as exc:  # serving never fails because a model did
            log.error("cannot load %s %s for an experiment arm (%s)", row.model_type, version, exc)
            loaded = None
        self._pinned[version] = (time.monotonic(), loaded)
        return loaded

    def _load(self, model_type: str, row: Any, generation: int) -> LoadedModel | None:
        """Load ``row``; a failure of any kind is answered with None (serving never fails
        because a model did) and, unless :meth:`invalidate` ran since ``generation``,
        recorded for :func:`health` and the retries."""
        try:
            trained = load_trained(self.store.fetch(row.uri))
            measured = (row.metrics or {}).get("validation", {}).get("ndcg@10")
            loaded = _attach_index(LoadedModel(row.id, row.version, row.model_type, trained,
                                               validation_ndcg=float(measured or 0.0)))  # fmt: skip
        except Exception as exc:
            if generation != self._generation:
                return None
            failure = self._record_failure(model_type, row, exc)
            log.error("cannot load %s %s (%s); attempt %d, next in %.0f s", model_type,
                      row.version, exc, failure.attempts,
                      failure.next_try - time.monotonic())  # fmt: skip
            return None
        log.info("serving %s %s", model_type, row.version)
        return loaded

    def _record_failure(self, model_type: str, row: Any, exc: Exception) -> LoadFailure:
        before = self._failed.get(model_type)
        attempts = before.attempts + 1 if before and before.registry_id == row.id else 1
        delay = min(self.retry_seconds * 2 ** (attempts - 1), self.retry_max_seconds)
        failure = LoadFailure(row.id, row.version, f"{type(exc).__name__}: {exc}", attempts,
                              time.monotonic() + delay)  # fmt: skip
        self._failed[model_type] = failure
        return failure

    def _load_in_background(self, model_type: str, row: Any, engine: Any) -> None:
        """Load ``row`` in a thread and adopt it when ready; after a failure, wait out the
        backoff and try again while ``row`` is still the active version."""
        generation = self._generation

        def current() -> bool:
            return generation == self._generation and not self._closed.is_set()

        def adopt() -> None:
            while current():
                failure = self._failed.get(model_type)
                if failure is not None and failure.registry_id == row.id:
                    wait = failure.next_try - time.monotonic()
                    if self._closed.wait(max(wait, 0.0)) or not current():
                        return
                    if not self._still_active(engine, model_type, row.id):
                        self._forget(model_type, row.id)
                        return
                loaded = self._load(model_type, row, generation)
                if loaded is not None:
                    with self._lock:
                        if current():
                            self._models[model_type] = loaded
                            self._forget(model_type, row.id)
                    return

        self._background.start(f"load-{model_type}-{row.id}-{generation}", adopt)

    def _still_active(self, engine: Any, model_type: str, registry_id: str) -> bool:
        """Whether ``registry_id`` is still ``model_type``'s active version (assumed so
        when the store cannot say: the retry goes on)."""
        try:
            with Session(bind=engine) as session:
                row = registry.active_version(session, model_type)
        except Exception as exc:
            log.warning("cannot check the active %s version (%s)", model_type, exc)
            return True
        return row is not None and row.id == registry_id

    def _forget(self, model_type: str, registry_id: str) -> None:
        failure = self._failed.get(model_type)
        if failure is not None and failure.registry_id == registry_id:
            self._failed.pop(model_type, None)

    def failures(self) -> dict[str, LoadFailure]:
        """Active versions that failed to load and are being retried, by model type."""
        return dict(self._failed)

    def serving_instead(self, model_type: str) -> str:
        """What answers while ``model_type``'s active version cannot load: the previous
        version, the other loaded models of its routes, or the heuristic ``fallback``."""
        previous = self._models.get(model_type)
        if previous is not None:
            return f"{model_type} {previous.version} (the previous version)"
        tiers = serving_traits(model_type)[0]
        others = [m for t, m in sorted(self._models.items())
                  if m is not None and t != model_type and m.domain == "items"
                  and tiers & serving_traits(t)[0]]  # fmt: skip
        if others:
            return ", ".join(f"{m.model_type} {m.version}" for m in others)
        return "fallback"

    def close(self) -> None:
        """Stop the background retries (a process shutting down, a test ending)."""
        self._closed.set()

    def catalogue(self, session: Session, max_age: float | None = None) -> Catalogue:
        """The item catalogue. Only the first load is waited for: a stale one keeps serving
        while a background thread reloads it, so no request pays for the reload (which
        would show up in every latency percentile above the median)."""
        cat = self._catalogue
        if cat is None:
            self._catalogue = cat = Catalogue.load(session)
            settle_heap()
        elif self._stale(cat.loaded_at, max_age):
            self._reload_in_background("catalogue", session.get_bind())
        return cat

    def people(
        self,
        session: Session,
        cell_km: float,
        must_have: str | None = None,
        max_age: float | None = None,
    ) -> PeopleCatalogue:
        """The people catalogue with positions as ``cell_km`` cells: loaded now when
        missing, built with another cell size, or when ``must_have`` (a new profile) is not
        in it; reloaded in the background when merely stale. Requests that need a load at
        the same time wait for one load (a load of a million profiles takes ~90 s and
        several GB: one each for a burst of new people would exhaust memory)."""

        def usable(cat: PeopleCatalogue | None) -> bool:
            return (cat is not None and cat.profiles.cell_km == cell_km
                    and (must_have is None or must_have in cat.position))  # fmt: skip

        cat = self._people
        if cat is None or not usable(cat):
            with self._people_loading:
                cat = self._people
                if cat is not None and cat.profiles.cell_km == cell_km and not usable(cat):
                    assert must_have is not None  # a profile new since: its rows alone
                    cat = self._patch(session, [must_have])
                if not usable(cat):  # no one else's load meanwhile brought it in
                    self._people = cat = self._load_people(
                        session.get_bind(), lambda: PeopleCatalogue.load(session, cell_km,
                                                                         previous=cat))  # fmt: skip
            assert cat is not None
        elif self._stale(cat.read_at or cat.loaded_at, max_age):
            self._reload_in_background("people", session.get_bind())
        return cat

    def _patch(self, session: Session, user_ids: Collection[str]) -> PeopleCatalogue | None:
        """Patch ``user_ids`` into the people catalogue now (None: none is held)."""
        with self._people_swap:
            for record in self._written_meanwhile:
                record.update(user_ids)
            if self._people is None:
                return None
            self._people = fresh = self._people.patched(session, user_ids)
            return fresh

    def _stale(self, loaded_at: float, max_age: float | None) -> bool:
        """Older than ``max_age`` (0 forces a reload), or ``catalogue_seconds`` by default."""
        limit = self.catalogue_seconds if max_age is None else max_age
        return time.monotonic() - loaded_at >= limit

    def _reload_in_background(self, what: str, engine: Any) -> None:
        """Reload ``what`` in a thread; asked again while one runs, it runs once more
        after it (the running one may have read before the change committed), and never
        more than one at a time: a burst of writes costs two reloads, not one each. Each
        reload first rests :func:`reload_rest` after the one before (a big catalogue's
        reloads never take more than a quarter of the time)."""
        with self._background_lock:
            self._wanted.add(what)
            if what in self._reloaders:
                return
            self._reloaders.add(what)

        def reloader() -> None:
            while True:
                with self._background_lock:
                    if what not in self._wanted or self._closed.is_set():
                        self._reloaders.discard(what)
                        return
                took, ended = self._reload_took.get(what, (0.0, -math.inf))
                rest = PATCH_REST if what == "patch" else RELOAD_REST
                if self._closed.wait(reload_rest(took, ended, time.monotonic(), rest)):
                    continue  # closed: the check above ends it
                with self._background_lock:
                    self._wanted.discard(what)
                began = time.monotonic()
                self._reload(what, engine)
                self._reload_took[what] = (time.monotonic() - began, time.monotonic())

        threading.Thread(target=reloader, daemon=True, name=f"matchwise-reload-{what}").start()

    def _reload(self, what: str, engine: Any) -> None:
        try:
            with Session(bind=engine) as session:
                if what == "catalogue":
                    fresh = Catalogue.load(session)
                    for loaded in list(self._models.values()):
                        if loaded is not None:  # map model items before anyone asks
                            loaded.catalogue_rows(fresh)
                    self._catalogue = fresh
                elif what == "patch":
                    with self._people_swap:
                        written, self._patch_ids = self._patch_ids, set()
                    self._patch(session, written)
                elif (stale := self._people) is not None:  # None: invalidated meanwhile
                    self._reload_people(session, stale)
                    del stale
        except Exception as exc:  # the stale copy keeps serving; the next request retries
            log.warning("reloading the %s failed (%s); serving the previous one", what, exc)
            return
        self.trims += give_back_freed_memory()  # the replaced one's pages (see there)

    def _reload_people(self, session: Session, stale: PeopleCatalogue) -> None:
        """Read every profile again, swapping the result in (see :meth:`_load_people`)."""
        young = time.monotonic() - stale.counted_at < self.catalogue_seconds
        self._load_people(session.get_bind(), lambda: PeopleCatalogue.load(  # counted again
            session, stale.profiles.cell_km, previous=stale,  # when they are due
            counts_from=stale if young else None))  # fmt: skip

    def _load_people(self, engine: Any, load: Callable[[], PeopleCatalogue]) -> PeopleCatalogue:
        """``load()`` (a read of every profile, ~90 s at a million) made the serving
        catalogue, with the profiles written while it read (named by change notices or
        patched in by requests) patched into it first: a read that began before their
        commit would lose them until the next full reload."""
        record: set[str] = set()
        with self._people_swap:
            self._written_meanwhile.append(record)
        try:
            fresh = load()
            with self._people_swap, Session(bind=engine) as now:  # sees what came since
                self._people = fresh = fresh.patched(now, record) if record else fresh
                return fresh
        finally:
            with self._people_swap:  # by identity: another load's record may be equal
                self._written_meanwhile = [r for r in self._written_meanwhile if r is not record]

    def items_loaded(self) -> bool:
        """Whether an items request can be answered from what is loaded: the catalogue is
        in, no switch to a new version is due, the active types are known and fresh (no
        registry read would reveal a new one) and each is loaded, or failed and retried in
        the background. What may still happen inside such a request: a registry check of
        one type (a short read), a load in the background."""
        checked, types = self._active_types
        return (
            self._catalogue is not None
            and not self._switch_now
            and time.monotonic() - checked < self.check_seconds
            and all(self._models.get(t) is not None or t in self._failed for t in types)
        )

    def invalidate(self) -> None:
        """Check the registry on the next request and switch to a new version right then
        (after an activation in this process: a CLI command, the retrain job)."""
        with self._lock:
            self._switch_now = set(self._models) | set(self._checked)
            self._failed.clear()
            self._generation += 1
            self._checked.clear()
            self._active_types = (-1e9, ())
            self._active_versions = None
            self._catalogue = None
            self._people = None


#: After a catalogue reload, the next waits this many times as long as it took: reloads
#: take at most a quarter of a core, however big the catalogue grows.
RELOAD_REST = 3.0
#: After a patch of the people catalogue (a few profiles read and appended), the next
#: waits as long as it took: patches take at most half a core, and a burst of writes
#: becomes a few patches of many profiles each.
PATCH_REST = 1.0


def reload_rest(took: float, ended: float, now: float, rest: float = RELOAD_REST) -> float:
    """Seconds to wait before reloading a catalogue whose last reload took ``took`` seconds
    and ended at ``ended``. A reload re-reads the whole catalogue: 0.05 s for thousands
    of people, ~90 s for a million, where reloading on every write notice or every
    ``catalogue_max_age_seconds`` (30) would keep a core and the database busy for good;
    a change then waits for the next reload, ``RELOAD_REST`` times the last one's time at
    most. Small catalogues are not held back noticeably (0.15 s after a 0.05 s reload)."""
    return max(0.0, ended + rest * took - now)


def settle_heap() -> None:
    """Collect, then move everything alive into the collector's permanent generation.

    Called after the slow, one-off loads (a model version, the first catalogue), which
    are already a pause. The long-lived heap (libraries, models, indexes) is then never
    walked again by a full collection, which otherwise stalls every request in flight
    for 100-200 ms now and then: a tail-latency spike, not a throughput cost.
    """
    gc.collect()
    gc.freeze()


def serving_state(runtime: Runtime) -> ServingState:
    """The runtime's serving state (one per runtime: the API and the CLI each have theirs)."""
    settings = runtime.settings

    def make() -> ServingState:
        state = ServingState(
            registry.ArtifactStore(settings.artifact_root),
            check_seconds=settings.registry_check_seconds,
            catalogue_seconds=settings.catalogue_max_age_seconds,
        )
        if runtime.is_sqlite:  # PostgreSQL: the change notice does it, in every process
            engine = runtime.read_engine  # not the runtime: no cycle keeps it alive
            runtime.profile_listeners["serving"] = (  # this state's, not a forgotten one's
                lambda written: state.store_changed(engine, "user", written)
            )
        return state

    return runtime.component(ServingState, make)


def reset_serving_state(runtime: Runtime) -> None:
    """Forget everything loaded, as a fresh process would start."""
    state = runtime.component(ServingState, lambda: None)  # type: ignore[arg-type, return-value]
    runtime.forget(ServingState)
    runtime.forget(WarmUp)  # not ready until warmed up again
    if state is not None:
        state.close()


@dataclass
class WarmUp:
    """What this process's warm-up loaded, and whether it is over (``serve.readiness``
    answers 503 until ``done``); ``persons`` and ``user`` are whom it rehearses people
    lists and an item list for."""

    done: threading.Event = field(default_factory=threading.Event)
    models: list[str] = field(default_factory=list)
    items: int = 0
    people: int = 0
    bio_vectors: int = 0
    persons: list[str] = field(default_factory=list)
    user: str | None = None
    seconds: float | None = None
    #: set when the runtime closes: the warm-up stops at its next step
    closed: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def close(self) -> None:
        """Stop and wait for the warm-up thread (bounded) before the runtime disposes of
        its pools: a warm-up still running after that would open connections on the
        fresh pool a disposal leaves, which nobody closes (a test suite ran PostgreSQL
        out of connections that way)."""
        self.closed.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=60)


def warm_up_status(runtime: Runtime) -> WarmUp:
    """The runtime's warm-up record (one per runtime, as the serving state)."""
    return runtime.component(WarmUp, WarmUp)


def warm_up(runtime: Runtime) -> list[str]:
    """Load what the first requests would otherwise wait for: every active serving model
    with its ANN index, the versions running experiments' arms name, the item catalogue
    (with each model's map onto it) and, in a people store or with a people model active,
    the people catalogue with the stored bio vectors; noted in :func:`warm_up_status`.
    A failure is logged, and what failed loads lazily (:func:`health` names a model that
    will not load). Returns the versions loaded."""
    state = serving_state(runtime)
    record = warm_up_status(runtime)
    loaded: list[str] = []
    try:
        with runtime.read_session() as session:
            people_served = runtime.settings.domain == "people"
            for model_type in state.active_types(session):
                serves = serving_traits(model_type)[0]
                if not serves:
                    continue  # baselines and peers do not serve
                people_served |= "people" in serves
                found = state.model(session, model_type)
                if found is not None:
                    loaded.append(found.version)
            for exp in running_experiments(session):  # the versions experiment arms serve
                for arm in exp.arms:
                    pinned = None if arm.model_version is None else (
                        state.pinned(session, arm.model_version))  # fmt: skip
                    if pinned is not None and pinned.version not in loaded:
                        loaded.append(pinned.version)
            # an empty store has nothing to warm: its first request loads what came since
            if session.scalar(select(Item.id).limit(1)) is not None:
                catalogue = state.catalogue(session)
                record.items = len(catalogue)
                for model_type in state.active_types(session):
                    serves = serving_traits(model_type)[0]
                    held = state.model(session, model_type) if serves else None
                    if held is not None and held.domain == "items":
                        held.catalogue_rows(catalogue)
                on_items = Interaction.item_id.is_not(None)
                record.user = session.scalar(select(Interaction.user_id).where(on_items).limit(1))
            if people_served and session.scalar(select(User.id).limit(1)) is not None:
                people = state.people(session, runtime.settings.location_cell_km)
                vectors = people.bio_vectors()
                record.people = int(people.visible.sum())
                record.bio_vectors = 0 if vectors is None else int(np.count_nonzero(
                    np.any(vectors != 0, axis=1)))  # fmt: skip
                if record.people:  # the most and the least active: each route rehearsed
                    shown = np.flatnonzero(people.visible)
                    given = people.swipes_given[shown]
                    ends = {shown[np.argmax(given)], shown[np.argmin(given)]}
                    record.persons = sorted(str(people.profiles.ids[row]) for row in ends)
    except Exception as exc:
        log.warning("warm-up incomplete (%s); the first requests will load the rest", exc)
    record.models = loaded
    return loaded


def health(runtime: Runtime) -> HealthOut:
    """Liveness and the truth about the models: ``degraded`` while an active version
    failed to load in this process, naming it and what serves instead. It never loads
    anything itself (the retries run in the background)."""
    state = serving_state(runtime)
    now = time.monotonic()
    failed = [
        FailedModelOut(
            model_type=model_type,
            version=failure.version,
            error=failure.error,
            attempts=failure.attempts,
            retry_in_seconds=round(max(failure.next_try - now, 0.0), 1),
            serving=state.serving_instead(model_type),
        )  # fmt: skip
        for model_type, failure in sorted(state.failures().items())
    ]
    return HealthOut(status="degraded" if failed else "ok",
                     revision=runtime.revision() or "none", failed_models=failed)  # fmt: skip


__all__ = ["Catalogue", "LoadedModel", "LoadFailure", "ServingState", "WarmUp", "health",
           "reset_serving_state", "serving_state", "warm_up", "warm_up_status"]  # fmt: skip
