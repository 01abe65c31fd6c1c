"""The people catalogue: every profile as arrays, the form matching computes on, loaded
whole and then patched with the profiles written since (issue 21 item 4).

A full load reads every profile (~90 s at a million people), so it cannot follow each
new or changed profile; a change notice names the profiles written, and
:meth:`PeopleCatalogue.patched` makes a new catalogue of the old one with those profiles
read again and appended as new rows (their old rows hidden): a read of a few rows, and
arrays that grow at the end. The index of who may be matched with whom keeps its
segments and gains a small one of the appended rows; the bio vectors grow in place
(:mod:`matchwise.serve.appendable`). The periodic full load still runs, at its own pace,
and starts the rows afresh.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from matchwise.db import columnar, queries
from matchwise.db.queries import chunked
from matchwise.db.tables import ProfileEmbedding
from matchwise.features.compatibility import ProfileArrays
from matchwise.features.people import like_rate
from matchwise.features.people_index import PeopleIndex
from matchwise.features.text import EMBEDDING_DIM, text_key, vectors_from_bytes
from matchwise.serve.appendable import AppendableRows


@dataclass
class PeopleCatalogue:
    """Every profile as arrays (compatibility, Elo, popularity, running swipe rates, bio
    vectors), reloaded every ``max_age`` seconds; ``visible`` marks who may be shown
    (active, not held, and a person: a dating profile (a gender) or a part in a swipe, as
    training counts people; an item-domain user is a row only so that they can ask, never a
    candidate, and has no bio vector). ``likes_given`` of ``swipes_given`` and
    ``likes_received`` of ``swipes_received`` count each person's swipes on people both
    ways (how choosy, how desired); ``like_rate`` is everyone's likes over everyone's
    swipes, the rate a person without swipes is taken to have. Bio vectors are the stored
    ones (``profile_embeddings``, written by the worker when a profile is written) whose
    content hash matches the bio: nothing is embedded here."""

    profiles: Any  # features.compatibility.ProfileArrays
    visible: np.ndarray
    elo: np.ndarray
    likes_received: np.ndarray
    swipes_received: np.ndarray
    bios: list[str]
    city_lc: np.ndarray
    loaded_at: float
    position: dict[str, int] = field(default_factory=dict)
    likes_given: np.ndarray = field(default_factory=lambda: np.zeros(0))
    swipes_given: np.ndarray = field(default_factory=lambda: np.zeros(0))
    like_rate: float = 0.5
    #: when the swipe counts were counted (monotonic; a reload may carry them over)
    counted_at: float = field(default_factory=time.monotonic)
    _bio_vectors: np.ndarray | None = None
    #: per row, the content hash of the stored vector in ``_bio_vectors`` (None: none)
    bio_keys: list[str | None] = field(default_factory=list)
    #: who may be shown at all (active, not held), people or not: "similar people" lists
    #: item-domain users too (people who like the same things); None: as ``visible``
    shown: np.ndarray | None = None
    #: the profiles by segment and distance cell: candidates without a scan (built at load)
    index: PeopleIndex | None = None
    #: when every profile was last read (monotonic; None: ``loaded_at``): a patch makes a
    #: new catalogue, not a fresh read of everyone, so staleness is counted from here
    read_at: float | None = None
    #: ``(loaded_at, rows)`` of each catalogue this one was patched from, oldest first:
    #: their rows are this one's first ``rows``, so what was derived for each row of one
    #: (a model's columns, hashed ids) is carried over for those rows
    ancestors: tuple[tuple[float, int], ...] = ()
    #: the buffer ``_bio_vectors`` is a view of (appended to by :meth:`patched`)
    _vector_rows: AppendableRows | None = None

    def people_index(self) -> PeopleIndex:
        """The candidate index (:class:`~matchwise.features.people_index.PeopleIndex`),
        built when the catalogue was loaded (here only for a catalogue made by hand)."""
        if self.index is None:
            self.index = PeopleIndex.build(self.profiles)
        return self.index

    @classmethod
    def load(
        cls,
        session: Session,
        cell_km: float,
        previous: PeopleCatalogue | None = None,
        counts_from: PeopleCatalogue | None = None,
    ) -> PeopleCatalogue:
        """Positions become ``cell_km`` cells here (``location_cell_km``): matching never
        sees where anyone is exactly. Vectors unchanged since ``previous`` (the catalogue
        this one replaces) are taken from it, not read again. With ``counts_from``, the
        swipe counts are its counts (0 for people new since), not counted again: two
        passes over every swipe, most of a reload's time in the database, which a profile
        written needs no more than before (a new person has no swipes)."""
        frame = columnar.users_frame(session)  # COPY on PostgreSQL
        profiles = ProfileArrays.from_frame(frame, cell_km=cell_km)
        ids = pd.Series(profiles.ids)
        if counts_from is None:
            received = columnar.swipe_counts(session, "target")  # one pass over the swipes
            given = columnar.swipe_counts(session, "swiper")
            likes, swipes = received["likes"], received["swipes"]
            liked, swiped = given["likes"], given["swipes"]
            rate, counted_at = like_rate(likes.sum(), swipes.sum()), time.monotonic()
        else:
            before = pd.Index(counts_from.profiles.ids)
            likes, swipes, liked, swiped = (pd.Series(counts, index=before) for counts in (
                counts_from.likes_received, counts_from.swipes_received,
                counts_from.likes_given, counts_from.swipes_given))  # fmt: skip
            rate, counted_at = counts_from.like_rate, counts_from.counted_at
        swipes_received = ids.map(swipes).fillna(0.0).to_numpy(float)
        swipes_given = ids.map(swiped).fillna(0.0).to_numpy(float)
        person = frame["gender"].notna().to_numpy(bool) | (swipes_received > 0) | (
            swipes_given > 0)  # fmt: skip
        shown = (frame["active"].astype(bool) & (frame["moderation_status"] == "ok")).to_numpy(bool)
        bios = frame["bio"].fillna("").astype(str).tolist()
        held, vectors, keys = cls._stored_vectors(session, profiles.ids, bios, person,
                                                  previous)  # fmt: skip
        loaded_at = time.monotonic()
        return cls(
            profiles=profiles,
            visible=person & shown,
            elo=pd.to_numeric(frame["elo"], errors="coerce").fillna(1500.0).to_numpy(float),
            likes_received=ids.map(likes).fillna(0.0).to_numpy(float),
            swipes_received=swipes_received,
            bios=bios,
            city_lc=frame["city"].fillna("").str.lower().to_numpy(dtype=object),
            loaded_at=loaded_at,
            read_at=loaded_at,
            position={v: i for i, v in enumerate(profiles.ids.tolist())},
            likes_given=ids.map(liked).fillna(0.0).to_numpy(float),
            swipes_given=swipes_given,
            like_rate=rate,
            counted_at=counted_at,
            _bio_vectors=vectors,
            bio_keys=keys,
            shown=shown,
            index=PeopleIndex.build(profiles),
            _vector_rows=held,
        )

    @staticmethod
    def _stored_vectors(
        session: Session,
        ids: np.ndarray,
        bios: list[str],
        person: np.ndarray,
        previous: PeopleCatalogue | None,
    ) -> tuple[AppendableRows | None, np.ndarray | None, list[str | None]]:
        """The stored bio vector of each person whose bio it was computed from (zero rows
        for the rest: no bio, not embedded yet, an item-domain user), and each row's
        content hash; None when no one has one; and the buffer the vectors are the first
        rows of (:class:`AppendableRows`). Only vectors ``previous`` lacks are read,
        and when every row's vector is as in ``previous``, its array is the answer: a
        reload then allocates no second copy of it (60 MiB at 40,000 users, 1.5 GB at a
        million) while the old catalogue still serves."""
        stored = dict(session.execute(
            select(ProfileEmbedding.user_id, ProfileEmbedding.content_hash)).all())  # fmt: skip
        keys: list[str | None] = [None] * len(ids)
        for row, (uid, bio) in enumerate(zip(ids.tolist(), bios, strict=True)):
            keys[row] = _current_key(stored.get(uid), bool(person[row]), bio)
        if not any(keys):
            return None, None, keys
        if (
            previous is not None
            and previous._bio_vectors is not None
            and previous.bio_keys == keys
            and np.array_equal(previous.profiles.ids, ids)
        ):
            return (previous._vector_rows, previous._bio_vectors,
                    previous.bio_keys)  # unchanged: the same array  # fmt: skip
        held = AppendableRows(len(ids), EMBEDDING_DIM)
        vectors = held.first(len(ids))
        reuse = previous is not None and previous._bio_vectors is not None
        before = previous.position if previous is not None and reuse else {}
        wanted: dict[str, int] = {}
        for row, (uid, key) in enumerate(zip(ids.tolist(), keys, strict=True)):
            if key is None:
                continue
            old = before.get(uid)
            if old is not None and previous is not None and previous.bio_keys[old] == key:
                vectors[row] = previous._bio_vectors[old]  # type: ignore[index]
            else:
                wanted[uid] = row
        names = sorted(wanted)
        for start in range(0, len(names), 2000):
            chunk = names[start : start + 2000]
            found = session.execute(select(ProfileEmbedding.user_id, ProfileEmbedding.vector)
                                    .where(ProfileEmbedding.user_id.in_(chunk))).all()  # fmt: skip
            rows = [wanted[uid] for uid, _ in found]
            vectors[rows] = vectors_from_bytes([bytes(blob) for _, blob in found])
        return held, vectors, keys

    def patched(self, session: Session, user_ids: Collection[str]) -> PeopleCatalogue:
        """This catalogue with the profiles ``user_ids`` as the store holds them now: each
        one read again and appended as a new row (its old row, if any, hidden and no longer
        its ``position``), a profile no longer stored (erased) hidden, its bio dropped and
        its bio vector zeroed in the buffer every catalogue shares. What is carried over: each
        one's swipe counts (a new person has none), the stored bio vectors of everyone else,
        the index's segments (the new rows get a small index of their own). ``self`` is
        left as it was: a request may still be using it."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return self
        frame = pd.concat([queries.users_frame(session, ids=part)
                           for part in chunked(wanted, 2000)], ignore_index=True)  # fmt: skip
        n, added = len(self.profiles), len(frame)
        new_ids = frame["id"].astype(str).tolist()
        old = np.array([self.position.get(uid, -1) for uid in new_ids], np.int64)
        hidden = np.array([self.position[uid] for uid in wanted if uid in self.position],
                          np.int64)  # fmt: skip
        profiles = self.profiles.appended(frame)

        def grown(values: np.ndarray, fresh: np.ndarray | None = None) -> np.ndarray:
            """``values`` with a value for each new row: ``fresh``, else the old row's."""
            if fresh is None:
                fresh = np.where(old >= 0, values[np.maximum(old, 0)] if n else 0, 0)
            return np.concatenate([values, np.asarray(fresh, dtype=values.dtype)])

        swipes_received, swipes_given = grown(self.swipes_received), grown(self.swipes_given)
        person = frame["gender"].notna().to_numpy(bool) | (swipes_received[n:] > 0) | (
            swipes_given[n:] > 0)  # fmt: skip
        shown_now = (frame["active"].astype(bool)
                     & (frame["moderation_status"] == "ok")).to_numpy(bool)  # fmt: skip
        visible = grown(self.visible, person & shown_now)
        shown = grown(self.visible if self.shown is None else self.shown, shown_now)
        visible[hidden], shown[hidden] = False, False
        bios = frame["bio"].fillna("").astype(str).tolist()
        held, vectors, keys = self._appended_vectors(session, new_ids, bios, person)
        all_bios = [*self.bios, *bios]
        for uid in set(wanted) - set(new_ids):  # erased: what they wrote leaves the memory
            if (row := self.position.get(uid)) is not None:
                all_bios[row], keys[row] = "", None
                if vectors is not None:
                    vectors[row] = 0.0  # the shared buffer: the older catalogues' view too
        position = dict(self.position)
        position.update({uid: n + i for i, uid in enumerate(new_ids)})
        index = self.people_index()
        first = index.first_recent if index.recent is not None else n
        loaded_at = max(time.monotonic(), self.loaded_at + 1e-6)  # a new catalogue's mark
        return replace(
            self,
            profiles=profiles,
            visible=visible,
            elo=grown(self.elo, pd.to_numeric(frame["elo"], errors="coerce").fillna(1500.0)),
            likes_received=grown(self.likes_received),
            swipes_received=swipes_received,
            bios=all_bios,
            city_lc=grown(self.city_lc, frame["city"].fillna("").str.lower().to_numpy(object)),
            loaded_at=loaded_at,
            position=position,
            likes_given=grown(self.likes_given),
            swipes_given=swipes_given,
            _bio_vectors=vectors,
            bio_keys=keys,
            shown=shown,
            index=index.with_rows_from(profiles, first) if added else index,
            read_at=self.read_at if self.read_at is not None else self.loaded_at,
            ancestors=(*self.ancestors, (self.loaded_at, n)),
            _vector_rows=held,
        )

    def _appended_vectors(
        self, session: Session, ids: list[str], bios: list[str], person: np.ndarray
    ) -> tuple[AppendableRows | None, np.ndarray | None, list[str | None]]:
        """:meth:`_stored_vectors` for rows appended to this catalogue's: the vectors grow
        at the end of the buffer they share (none is read again, none copied)."""
        keys: list[str | None] = [None] * len(ids)
        found: dict[str, tuple[str, bytes]] = {}
        stored = select(ProfileEmbedding.user_id, ProfileEmbedding.content_hash,
                        ProfileEmbedding.vector)  # fmt: skip
        for part in chunked(ids, 2000):
            rows = session.execute(stored.where(ProfileEmbedding.user_id.in_(part)))
            found.update({uid: (key, bytes(blob)) for uid, key, blob in rows})
        for row, (uid, bio) in enumerate(zip(ids, bios, strict=True)):
            keys[row] = _current_key(found.get(uid, (None, b""))[0], bool(person[row]), bio)
        before: list[str | None] = self.bio_keys or [None] * len(self)
        all_keys = [*before, *keys]
        if self._bio_vectors is None and not any(keys):
            return None, None, all_keys
        more = np.zeros((len(ids), EMBEDDING_DIM), dtype=np.float32)
        mine = [row for row, key in enumerate(keys) if key is not None]
        if mine:
            more[mine] = vectors_from_bytes([found[ids[row]][1] for row in mine])
        held = self._vector_rows
        if held is None:  # no vectors yet, or a catalogue made by hand: a buffer now
            first = self._bio_vectors
            held = AppendableRows.holding(first if first is not None else np.zeros(
                (len(self), EMBEDDING_DIM), dtype=np.float32))  # fmt: skip
        held, vectors = held.append(len(self), more)
        return held, vectors, all_keys

    def __len__(self) -> int:
        return len(self.profiles)

    def shared_rows(self, derived: Collection[float]) -> tuple[float, int] | None:
        """Of the catalogues something was derived for (by ``loaded_at``), the nearest this
        one was patched from and how many first rows it shares with it (what was derived
        for those rows holds here too); None: none of them."""
        for at, rows in reversed(self.ancestors):
            if at in derived:
                return at, rows
        return None

    def bio_vectors(self) -> np.ndarray | None:
        """The stored bio vector of each row (``(n, 384)``, zero rows where there is none);
        None when no one has one. Never embeds: a profile the worker has not embedded yet
        scores without the bio signal."""
        return self._bio_vectors


def _current_key(stored: str | None, is_person: bool, bio: str) -> str | None:
    """A stored vector's content hash when it is the vector of this person's bio as it is
    now (None: no bio, not a person, not embedded yet, or embedded from an older bio)."""
    if stored is not None and is_person and bio.strip() and stored == text_key(bio.strip()):
        return stored
    return None
