"""No cold request (issue 21 item 3): a profile's bio vector is computed by the worker
when the profile is written and stored with the bio's content hash; serving reads the
stored vectors and never embeds. Item-domain users are never people candidates."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from matchwise.db.notify import listen, listener_dsn, received
from matchwise.db.tables import Job, ProfileEmbedding
from matchwise.errors import ArtifactError
from matchwise.features import text as text_module
from matchwise.features.text import text_key
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import EMBED_JOB, store_users, upsert_items, upsert_users
from matchwise.jobs.worker import Worker
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, UserIn
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.recommend import recommend
from matchwise.serve.state import reset_serving_state
from matchwise.serve.types import RecommendationList
from tests.utils.factories import items_fixture, person

BIOS = {
    "alice": "I love hiking in the mountains and long trail runs.",
    "bob": "Mountain hiking every weekend, and jazz at night.",
    "ivan": "Hiking, climbing and camping under the stars.",
    "carl": "Chess tournaments and quiet evenings with a book.",
}


def _people() -> list[UserIn]:
    return [
        person("alice", bio=BIOS["alice"]),
        person("bob", gender="man", seeking=["woman"], age=32, bio=BIOS["bob"]),
        person("carl", gender="man", seeking=["woman"], age=35, bio=BIOS["carl"]),
        person("ivan", gender="man", seeking=["woman"], age=28, bio=BIOS["ivan"]),
        person("nobio", gender="man", seeking=["woman"], age=30),
    ]


def _stored(runtime: Runtime) -> dict[str, tuple[str, np.ndarray]]:
    with runtime.read_session() as s:
        rows = s.execute(select(ProfileEmbedding.user_id, ProfileEmbedding.content_hash,
                                ProfileEmbedding.vector)).all()  # fmt: skip
    return {u: (h, np.frombuffer(bytes(v), dtype="<f4")) for u, h, v in rows}


def _queued(runtime: Runtime) -> list[list[str]]:
    with runtime.read_session() as s:
        jobs = s.scalars(select(Job).where(Job.job_type == EMBED_JOB, Job.status == "queued"))
        return [sorted(j.payload["user_ids"]) for j in jobs]


def _unavailable_embedder(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """From here on the sentence model cannot be loaded (as on a server without it); the
    list records each attempt."""
    calls: list[object] = []

    def unavailable(device: object = None) -> None:
        calls.append(device)
        raise ArtifactError("the sentence model is not available to requests")

    monkeypatch.setattr(text_module, "load_sentence_model", unavailable)
    return calls


def _people_list(runtime: Runtime, user: str) -> RecommendationList:
    with runtime.session() as s:
        return recommend(runtime, s, user, limit=10, kind="user", use_cache=False)


def test_a_profile_write_queues_its_bio_vector_and_the_worker_stores_it(
    runtime: Runtime,
) -> None:
    with runtime.session() as s:
        store_users(s, runtime.settings, _people())
    assert _queued(runtime) == [["alice", "bob", "carl", "ivan"]]  # a new profile without bio: none
    assert _stored(runtime) == {}  # nothing computed inside the write
    Worker(runtime).run(until_idle=True)
    stored = _stored(runtime)
    assert sorted(stored) == ["alice", "bob", "carl", "ivan"]
    for user, (key, vector) in stored.items():
        assert key == text_key(BIOS[user])
        assert vector.shape == (384,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    hikers = float(stored["alice"][1] @ stored["bob"][1])
    assert hikers > float(stored["alice"][1] @ stored["carl"][1])

    with runtime.session() as s:  # a changed bio and a removed one
        bob = person("bob", gender="man", seeking=["woman"], age=32, bio=None)
        upsert_users(s, [person("alice", bio="Novels, cats and tea."), bob])
    assert _queued(runtime) == [["alice", "bob"]]
    Worker(runtime).run(until_idle=True)
    stored = _stored(runtime)
    assert sorted(stored) == ["alice", "carl", "ivan"]  # bob's old vector is gone
    assert stored["alice"][0] == text_key("Novels, cats and tea.")


def test_a_people_request_reads_stored_vectors_and_never_embeds(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.session() as s:
        store_users(s, runtime.settings, _people())
    Worker(runtime).run(until_idle=True)  # the worker embeds, with the sentence model
    reset_serving_state(runtime)  # a fresh server process

    calls = _unavailable_embedder(monkeypatch)
    result = _people_list(runtime, "alice")
    assert calls == []
    assert {r.candidate_id for r in result.recommendations} == {"bob", "carl", "ivan", "nobio"}
    for rec in result.recommendations:  # the bio signal is there, read from the store
        assert rec.explanation is not None and "bio" in rec.explanation.contributions
    bio = {r.candidate_id: r.explanation.contributions["bio"]
           for r in result.recommendations if r.explanation is not None}  # fmt: skip
    assert bio["bob"] > bio["carl"] and bio["nobio"] == 0.0


def test_a_profile_not_embedded_yet_is_served_without_its_vector(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _unavailable_embedder(monkeypatch)
    with runtime.session() as s:
        store_users(s, runtime.settings, _people())  # the worker has not run
    result = _people_list(runtime, "alice")
    assert calls == []
    assert {r.candidate_id for r in result.recommendations} == {"bob", "carl", "ivan", "nobio"}
    for rec in result.recommendations:
        assert rec.explanation is not None and "bio" not in rec.explanation.contributions


def test_item_domain_users_are_never_people_candidates(runtime: Runtime) -> None:
    """A user without a dating profile (no gender) who only acts on items is no candidate,
    even for someone who seeks everyone; they may still ask for a list."""
    with runtime.session() as s:
        upsert_users(s, [person("alice", seeking=[]),
                         person("bob", gender="man", seeking=["woman"], age=32),
                         person("pat", gender=None, seeking=[]),  # swipes on people: a person
                         UserIn(id="shopper", city="Berlin")])  # fmt: skip
        upsert_items(s, items_fixture())
    with runtime.session() as s:
        ingest_events(s, [InteractionIn(user_id="shopper", item_id="e1", action="like"),
                          InteractionIn(user_id="pat", target_user_id="bob", action="like")],
                      runtime.settings.action_table)  # fmt: skip
    assert {r.candidate_id for r in _people_list(runtime, "alice").recommendations} == {
        "bob", "pat"}  # fmt: skip
    assert "shopper" not in {r.candidate_id for r in _people_list(runtime, "pat").recommendations}
    _people_list(runtime, "shopper")  # asking is fine


@pytest.mark.postgres
def test_stored_vectors_are_announced_to_every_server(pg_runtime: Runtime) -> None:
    """The worker's vectors reach servers as a profile change does: a ``user`` notice at
    the commit, so each server re-reads its people catalogue (and the new vectors) at
    once instead of at its next periodic reload."""
    runtime = pg_runtime
    with runtime.session() as s:
        store_users(s, runtime.settings, _people())
    listener = listen(listener_dsn(runtime.engine))
    try:
        Worker(runtime).run(until_idle=True)
        assert "user" in {n.topic for n in received(listener, timeout=2.0)}
        with runtime.session() as s:  # a removed bio: its vector goes, servers hear of it
            upsert_users(s, [person("bob", gender="man", seeking=["woman"], age=32, bio=None)])
        list(received(listener, timeout=0.5))  # the profile write's own notice
        Worker(runtime).run(until_idle=True)
        assert "user" in {n.topic for n in received(listener, timeout=2.0)}
    finally:
        listener.close()


def test_a_reload_shares_unchanged_vectors_and_reads_changed_ones(runtime: Runtime) -> None:
    """A reload with every vector as before keeps the previous array (no second copy while
    the old catalogue serves); a changed bio gives a new array with its new vector."""
    with runtime.session() as s:
        store_users(s, runtime.settings, _people())
    Worker(runtime).run(until_idle=True)
    cell_km = runtime.settings.location_cell_km
    with runtime.read_session() as s:
        first = PeopleCatalogue.load(s, cell_km)
        again = PeopleCatalogue.load(s, cell_km, previous=first)
    assert first.bio_vectors() is not None and again.bio_vectors() is first.bio_vectors()
    with runtime.session() as s:
        upsert_users(s, [person("bob", gender="man", seeking=["woman"], age=32,
                                bio="Chess openings and quiet libraries.")])  # fmt: skip
    Worker(runtime).run(until_idle=True)
    with runtime.read_session() as s:
        changed = PeopleCatalogue.load(s, cell_km, previous=again)
    old, new = again.bio_vectors(), changed.bio_vectors()
    assert old is not None and new is not None and new is not old
    row = changed.position
    assert np.array_equal(new[row["alice"]], old[again.position["alice"]])
    assert not np.allclose(new[row["bob"]], old[again.position["bob"]])
    assert np.array_equal(new[row["bob"]], _stored(runtime)["bob"][1])
