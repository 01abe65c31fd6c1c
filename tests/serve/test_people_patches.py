"""A new or changed profile reaches fresh people lists without a full reload (issue 21
item 4 at a million people, where a full load of the catalogue takes ~90 s): the profiles a
change names are read alone and patched into the catalogue
(:meth:`~matchwise.serve.people_catalogue.PeopleCatalogue.patched`). The lists a patched
catalogue gives are the lists a fresh full load gives, to the score, on SQLite and
PostgreSQL: new people (one of a gender nobody had, one with tags nobody had, one without
a position), people who moved, changed their wishes or their bio, and one deactivated."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from matchwise.data.synthetic import generate_people
from matchwise.db.notify import listen, listener_dsn, notify, received
from matchwise.db.tables import User
from matchwise.features.text import EMBEDDING_DIM, TextEmbedder
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.profiles import embed_profiles, store_users
from matchwise.runtime import Runtime
from matchwise.schemas import UserIn
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.recommend import recommend
from matchwise.serve.similar import similar_users
from matchwise.serve.state import ServingState, serving_state
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.utils.factories import person
from tests.utils.waiting import until


class _SeededVectors:
    """Bio vectors from each bio's own seed: the stored form the worker writes, without
    loading the sentence model (what is tested is the catalogue, not the embedding)."""

    def embed(self, texts: Sequence[str | None]) -> np.ndarray:
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = sum(map(ord, text or "")) + len(text or "")
            out[row] = np.random.default_rng(seed).normal(size=EMBEDDING_DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def _embed(runtime: Runtime, ids: Sequence[str] | None = None) -> None:
    embed_profiles(runtime, ids, embedder=cast(TextEmbedder, _SeededVectors()))


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_people(n_users=240, n_swipes=2400, seed=5, start=start, n_cities=2)
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    _embed(runtime)
    train_model(runtime, "reciprocal", domain="people", activate="always")
    yield runtime
    runtime.close()


def _profile(runtime: Runtime, user_id: str) -> dict[str, Any]:
    with runtime.read_session() as s:
        row = s.get(User, user_id)
        assert row is not None
        return {c: getattr(row, c) for c in ("age", "gender", "seeking", "age_min", "age_max",
                                             "max_distance_km", "latitude", "longitude",
                                             "city", "tags", "bio")}  # fmt: skip


def _changes(runtime: Runtime) -> list[UserIn]:
    """New people and changed ones, as an app would write them."""
    ann, ben, cid, dee = (_profile(runtime, u) for u in ("p1", "p2", "p3", "p4"))
    other_city = _profile(runtime, "p0")
    return [
        # new: beside p1, wanting what p1 is, with a tag nobody had
        person(
            "new_a",
            age=ann["age"],
            gender=ann["seeking"][0],
            seeking=[ann["gender"]],
            age_min=18,
            age_max=80,
            max_distance_km=100.0,
            latitude=ann["latitude"],
            longitude=ann["longitude"],
            city=ann["city"],
            tags=["kitesurfing", *ann["tags"]],
            bio="Kitesurfing at dawn, then coffee.",
        ),
        # new: a gender nobody had, seeking everyone, near p2
        person(
            "new_b",
            age=30,
            gender="nonbinary",
            seeking=["woman", "man", "nonbinary"],
            age_min=18,
            age_max=80,
            max_distance_km=80.0,
            latitude=ben["latitude"],
            longitude=ben["longitude"],
            city=ben["city"],
            tags=ben["tags"],
        ),
        # new: no position (distance never excludes them)
        person(
            "new_c",
            age=33,
            gender=cid["seeking"][0],
            seeking=[cid["gender"]],
            age_min=18,
            age_max=80,
            max_distance_km=None,
            latitude=None,
            longitude=None,
            city=None,
            tags=["chess"],
        ),
        # changed: p3 moves to p0's city and is a year older, with a new bio
        person(
            "p3",
            **{
                **cid,
                "latitude": other_city["latitude"],
                "longitude": other_city["longitude"],
                "city": other_city["city"],
                "age": (cid["age"] or 30) + 1,
                "bio": "Moved, and love it here.",
            },
        ),
        # changed: p4 now seeks everyone, within 500 km
        person("p4", **{**dee, "seeking": ["woman", "man"], "max_distance_km": 500.0}),
        # deactivated
        person("p5", **{**_profile(runtime, "p5"), "active": False}),
    ]


def _holds(state: ServingState, user_id: str) -> bool:
    """Whether the people catalogue ``state`` serves holds ``user_id``."""
    return state._people is not None and user_id in state._people.position


def _lists(runtime: Runtime, users: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with runtime.read_session() as s:
        for user in users:
            found = recommend(runtime, s, user, limit=200, kind="user", use_cache=False,
                              experiments=False)  # fmt: skip
            out[user] = [(r.candidate_id, round(r.score, 9), r.reason)
                         for r in found.recommendations]  # fmt: skip
    return out


def _similar(runtime: Runtime, users: list[str]) -> dict[str, list[tuple[str, float]]]:
    with runtime.read_session() as s:
        return {user: [(p.candidate_id, round(p.score, 9)) for p in similar_users(runtime, s, user,
                                                                          limit=50).similar]
                for user in users}  # fmt: skip


def test_a_patched_catalogue_gives_the_lists_of_a_fresh_load(store: Runtime) -> None:
    state, cell_km = serving_state(store), store.settings.location_cell_km
    with store.read_session() as s:
        before = state.people(s, cell_km)
    _lists(store, ["p1"])  # what a list derives per catalogue (model columns) is carried over
    _similar(store, ["p1"])  # and what similar people derive (hashed ids)
    changes = _changes(store)
    with store.session() as s:
        store_users(s, store.settings, changes)
    written = [u.id for u in changes]
    _embed(store, written)
    asking = [*written[:5], "p0", "p1", "p2", "p7", "p8", "p9", "p10", "p11", "p12"]

    with store.read_session() as s:
        patched = before.patched(s, written)
    assert len(patched) == len(before) + len(written)  # appended, the old rows kept
    assert patched.ancestors == ((before.loaded_at, len(before)),)
    assert not patched.visible[patched.position["p5"]]
    assert not patched.visible[before.position["p3"]]  # the old row of a changed profile
    assert patched.visible[patched.position["p3"]]
    assert len(before) == len(before.profiles.ids)  # the one serving is left as it was
    state._people = patched
    by_patch = _lists(store, asking)
    similar_by_patch = _similar(store, asking)

    state.invalidate()  # a full load of the same store
    with store.read_session() as s:
        fresh = state.people(s, cell_km)
    assert fresh.ancestors == () and len(fresh) == len(before) + 3
    by_load = _lists(store, asking)
    assert by_patch == by_load
    assert similar_by_patch == _similar(store, asking)
    assert any(similar_by_patch.values())
    assert any("new_a" in {c for c, *_ in found} for found in by_load.values())
    assert any("new_c" in {c for c, *_ in found} for found in by_load.values())
    assert all("p5" not in {c for c, *_ in found} for found in by_load.values())
    vectors, fresh_vectors = patched.bio_vectors(), fresh.bio_vectors()
    assert vectors is not None and fresh_vectors is not None
    for user in ("new_a", "p3", "p7"):
        np.testing.assert_array_equal(vectors[patched.position[user]],
                                      fresh_vectors[fresh.position[user]])  # fmt: skip


def test_named_profiles_are_patched_in_without_a_full_load(
    store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, cell_km = serving_state(store), store.settings.location_cell_km
    with store.read_session() as s:
        first = state.people(s, cell_km)
    loads: list[float] = []
    real = PeopleCatalogue.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type[PeopleCatalogue], *args: Any, **kwargs: Any) -> PeopleCatalogue:
        loads.append(time.monotonic())
        return real(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(PeopleCatalogue, "load", classmethod(counted))
    with store.session() as s:
        store_users(s, store.settings, [person("zed", gender="man", seeking=["woman"])])
    state.store_changed(store.read_engine, "user", ["zed"])  # what a change notice does
    until(lambda: _holds(state, "zed"), 10)
    held = state._people
    assert held is not None and "zed" in held.position and loads == []
    assert held.read_at == first.loaded_at  # not a fresh read: the periodic one still runs
    with store.session() as s:  # someone asks before any notice: patched in the request
        store_users(s, store.settings, [person("amy")])
    with store.read_session() as s:
        assert "amy" in state.people(s, cell_km, must_have="amy").position
    assert loads == []


def test_profiles_written_during_a_full_reload_are_patched_into_it(
    store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full reload reads for seconds at a million people: a profile written meanwhile
    (its notice patched the catalogue the reload replaces) must not vanish with the swap."""
    state, cell_km = serving_state(store), store.settings.location_cell_km
    with store.read_session() as s:
        first = state.people(s, cell_km)
    reading, go_on = threading.Event(), threading.Event()
    real = PeopleCatalogue.load.__func__  # type: ignore[attr-defined]

    def slow(cls: type[PeopleCatalogue], *args: Any, **kwargs: Any) -> PeopleCatalogue:
        loaded = real(cls, *args, **kwargs)
        reading.set()
        go_on.wait(10)  # the profile below is written after this read
        return loaded  # type: ignore[no-any-return]

    monkeypatch.setattr(PeopleCatalogue, "load", classmethod(slow))
    state.store_changed(store.read_engine, "user")  # a notice naming no one: a full reload
    assert reading.wait(10)
    with store.session() as s:
        store_users(s, store.settings, [person("late", gender="man", seeking=["woman"])])
    state.store_changed(store.read_engine, "user", ["late"])
    until(lambda: _holds(state, "late"), 10)
    assert "late" in state._people.position  # type: ignore[union-attr]  # patched meanwhile
    go_on.set()

    def reread() -> PeopleCatalogue | None:
        held = state._people
        return held if held is not None and (held.read_at or 0) > first.loaded_at else None

    until(lambda: reread() is not None, 10)
    held = reread()
    assert held is not None, "the full reload did not end"
    assert "late" in held.position and held.visible[held.position["late"]]


@pytest.mark.postgres
def test_a_profile_notice_names_the_profiles_when_they_fit(pg_runtime: Runtime) -> None:
    connection = listen(listener_dsn(pg_runtime.engine))
    try:
        with pg_runtime.session() as s:
            store_users(s, pg_runtime.settings, [person("ann"), person("bob")])
        with pg_runtime.session() as s:  # more than a notice holds: "someone", no names
            notify(s, "user", ids=[f"someone-with-a-long-id-{n:06d}" for n in range(400)])
        notices = [n for n in received(connection, 2.0) if n.topic == "user"]
        assert [n.users for n in notices] == [("ann", "bob"), ()]
    finally:
        connection.close()


def test_on_sqlite_a_profile_this_process_writes_is_patched_in_at_its_commit(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite has no change notices: the writing process's own catalogue patches what its
    transactions wrote, right after the commit (PostgreSQL: the notice does it)."""
    runtime = Runtime.open(Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "a")))
    try:
        with runtime.session() as s:
            store_users(s, runtime.settings, [person("ann")])
        state = serving_state(runtime)
        with runtime.read_session() as s:
            first = state.people(s, runtime.settings.location_cell_km)
        with runtime.session() as s:
            store_users(s, runtime.settings, [person("bob", gender="man", seeking=["woman"])])
        until(lambda: _holds(state, "bob"), 10)
        held = state._people
        assert held is not None and "bob" in held.position and held.read_at == first.loaded_at
        with runtime.session() as s:  # a rolled-back write names no one
            store_users(s, runtime.settings, [person("cy", gender="man", seeking=["woman"])])
            s.rollback()
        time.sleep(0.3)
        assert "cy" not in state._people.position  # type: ignore[union-attr]
    finally:
        runtime.close()


def test_a_runtime_nobody_holds_is_freed_at_once_with_its_connections(db_url: str) -> None:
    """The hook that tells this process's catalogue about written profiles must not tie
    the runtime into a cycle: a CLI command's runtime dropped without ``close()`` was then
    kept (with its pooled connections) until a full collection, or for good after
    ``gc.freeze()``, and a test run ran PostgreSQL out of connections."""
    runtime = Runtime.open(Settings(database_url=db_url), migrate=False)
    serving_state(runtime)  # the serving state's listener too
    with runtime.session() as s:
        store_users(s, runtime.settings, [person("ann")])
    alive = weakref.ref(runtime)
    gc.disable()
    try:
        del runtime, s
        assert alive() is None, "the runtime outlived its last reference"
    finally:
        gc.enable()
