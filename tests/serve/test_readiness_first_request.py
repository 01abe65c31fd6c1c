"""The first request after ready does what the hundredth does (issue 21 item 3): nothing
that a process builds once is left for it. FastAPI builds an included router's routes
(their parameter models and validators) on the first request reaching them; the start-up
primes them, so a people request right after ready builds no pydantic validator. And
scoring a person with the EASE-based people model copies no n x n matrix (it copied all
of B, Fortran order, for every request; the first copy in the serving thread page-faulted
its way to 3x the median request)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from matchwise.api import create_app
from matchwise.ingest.profiles import store_users
from matchwise.jobs.worker import Worker
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.ease import EASERecommender
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.readiness import recorded_reads, warm
from matchwise.serve.state import reset_serving_state, warm_up_status
from tests.utils.factories import person


def test_the_first_request_after_ready_builds_no_validators(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.session() as s:
        store_users(s, runtime.settings, [
            person("alice", bio="Hiking in the mountains."),
            person("bob", gender="man", seeking=["woman"], age=32, bio="Mountain trails."),
        ])  # fmt: skip
        key, _ = create_key(s, "read", name="tests")
    Worker(runtime).run(until_idle=True)  # the bio vectors
    people = Runtime.open(runtime.settings.model_copy(update={"domain": "people"}), migrate=False)
    reset_serving_state(people)  # a fresh process
    built: list[Any] = []
    original = TypeAdapter.__init__

    def counting(self: TypeAdapter[Any], *args: Any, **kwargs: Any) -> None:
        built.append(args[0] if args else kwargs.get("type"))
        original(self, *args, **kwargs)

    try:
        with TestClient(create_app(runtime=people)) as client:
            assert warm_up_status(people).done.wait(60)  # ready, asked of the process
            monkeypatch.setattr(TypeAdapter, "__init__", counting)
            first = client.get(
                "/v1/recommendations",
                params={"user_id": "alice", "kind": "user", "fresh": "true"},
                headers={"X-API-Key": key},
            )
            assert first.status_code == 200, first.text
            assert [r["candidate_id"] for r in first.json()["recommendations"]] == ["bob"]
        assert built == []
    finally:
        people.close()


@pytest.mark.parametrize("loaded", [False, True], ids=["fitted", "loaded"])
def test_ease_scores_a_person_without_copying_its_matrix(tmp_path: Path, loaded: bool) -> None:
    n = 600
    rng = np.random.default_rng(0)
    a, b = np.repeat(np.arange(n), 20), rng.integers(0, n, n * 20)
    ids = np.array([f"p{i}" for i in range(n)])
    train = InteractionSet(user_ids=ids, item_ids=ids, users=a, items=b,
                           labels=np.ones(len(a), dtype=np.float32))  # fmt: skip
    model: Recommender = EASERecommender().fit(train)
    if loaded:
        model = EASERecommender.load(model.save(tmp_path / "ease"))
    model.score(np.array([0]))
    tracemalloc.start()
    try:
        scores = model.score(np.array([7]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.shape == (1, n)
    assert peak < n * n * 4 / 4  # B is n x n float32 (1.4 MB); a score is one row of n


def test_ready_means_the_read_pool_is_connected(runtime: Runtime) -> None:
    """The first request gets a connection the pool already holds, never opens one."""
    with runtime.session() as s:
        store_users(s, runtime.settings, [person("alice"), person("bob", gender="man",
                                                                 seeking=["woman"])])  # fmt: skip
    reset_serving_state(runtime)
    warm(runtime)
    pool = runtime.read_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == pool.size()


def test_ready_means_every_pooled_connection_ran_the_serving_reads(runtime: Runtime) -> None:
    """A PostgreSQL session's first statements on a table look up its catalogue (~3 ms
    against ~1 for the serving reads): each connection the pool holds has run the
    rehearsals' reads once, not only ``SELECT 1``, so whichever one the first request
    gets is warm. The rehearsals take the request's own road (``tiers.live``)."""
    with runtime.session() as s:
        store_users(s, runtime.settings, [person("alice"), person("bob", gender="man",
                                                                 seeking=["woman"])])  # fmt: skip
    people = Runtime.open(runtime.settings.model_copy(update={"domain": "people"}), migrate=False)
    ran_reads: set[int] = set()

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM interactions" in statement:
            ran_reads.add(id(conn.connection.dbapi_connection))

    event.listen(people.read_engine, "before_cursor_execute", seen)
    try:
        record = warm(people)
        event.remove(people.read_engine, "before_cursor_execute", seen)
        assert record.persons, "nobody was rehearsed"
        pool = people.read_engine.pool
        assert isinstance(pool, QueuePool)
        held = [people.read_engine.connect() for _ in range(pool.size())]  # all it holds
        pooled = {id(c.connection.dbapi_connection) for c in held}
        for c in held:
            c.close()
        assert pool.checkedin() == pool.size()
    finally:
        people.close()
    cold = pooled - ran_reads
    assert not cold, f"{len(cold)} of {len(pooled)} pooled connections cold"


def test_recorded_reads_keep_each_statement_once(runtime: Runtime) -> None:
    with recorded_reads(runtime.read_engine) as reads, runtime.read_engine.connect() as conn:
        for n in range(3):
            conn.exec_driver_sql(f"SELECT {n % 2}")
    assert [statement for statement, _ in reads] == ["SELECT 0", "SELECT 1"]
