"""Drills against a real server: what a busy evening of a dating app does to matchwise.

A 200 means the row is stored; many people liking one person at once all succeed on
PostgreSQL and move the rating once each; mutual likes at the same moment make exactly
one match per pair; a burst of writes on the embedded SQLite store neither fails nor
stalls readers. Figures go to ``$MATCHWISE_DRILL_REPORT`` (benchmarks/drills/run.sh).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import event, func, select

from matchwise.api import create_app
from matchwise.db.tables import Interaction, Match, User
from matchwise.ingest.profiles import upsert_users
from matchwise.models.elo import update
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.utils.drills import burst, record
from tests.utils.factories import person
from tests.utils.live_server import live_server

pytestmark = pytest.mark.drill


def _key(runtime: Runtime) -> dict[str, str]:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="drill")
    return {"Authorization": f"Bearer {key}"}


def _count(runtime: Runtime, stmt: Any) -> int:
    with runtime.session() as s:
        return int(s.scalar(stmt) or 0)


@pytest.fixture
def served(runtime: Runtime) -> Iterator[tuple[str, dict[str, str]]]:
    headers = _key(runtime)
    with live_server(create_app(runtime=runtime)) as url:
        yield url, headers


def _user(ident: str, **kw: Any) -> dict[str, Any]:
    return person(ident, **kw).model_dump(mode="json")


# --- a 200 means it is stored ---------------------------------------------------------


def test_a_write_is_committed_before_it_is_answered(
    runtime: Runtime, served: tuple[str, dict[str, str]]
) -> None:
    url, headers = served

    def slow_commit(_conn: Any) -> None:
        time.sleep(0.3)

    event.listen(runtime.engine, "commit", slow_commit)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            created = client.post("/v1/users", json={"users": [_user("new_person")]})
            assert created.status_code == 200, created.text
            # the very next request, on another connection, finds the person
            liked = client.post(
                "/v1/interactions",
                json={"user_id": "new_person", "target_user_id": "new_person_2", "action": "like"},
            )
            assert liked.status_code == 404  # the target does not exist yet: named
            assert "new_person_2" in liked.json()["message"]
            client.post("/v1/users", json={"users": [_user("new_person_2", gender="man")]})
            liked = client.post(
                "/v1/interactions",
                json={"user_id": "new_person", "target_user_id": "new_person_2", "action": "like"},
            )
            assert liked.status_code == 200, liked.text
    finally:
        event.remove(runtime.engine, "commit", slow_commit)
    assert _count(runtime, select(func.count()).select_from(Interaction)) == 1


def test_a_failed_commit_is_a_server_error_and_stores_nothing(
    runtime: Runtime, served: tuple[str, dict[str, str]]
) -> None:
    url, headers = served

    def failing_commit(_conn: Any) -> None:
        raise OSError("disk I/O error")

    event.listen(runtime.engine, "commit", failing_commit)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            answer = client.post("/v1/users", json={"users": [_user("ghost")]})
    finally:
        event.remove(runtime.engine, "commit", failing_commit)
    assert answer.status_code >= 500
    assert "disk" not in answer.text and "Traceback" not in answer.text
    assert _count(runtime, select(func.count()).select_from(User)) == 0


# --- concurrent likes on PostgreSQL ---------------------------------------------------


@pytest.mark.postgres
def test_fifty_people_liking_one_person_at_once_all_succeed(pg_runtime: Runtime) -> None:
    runtime = pg_runtime
    fans = [f"fan{i:02d}" for i in range(50)]
    with runtime.session() as s:
        upsert_users(s, [person("star", gender="woman")]
                     + [person(f, gender="man", seeking=["woman"]) for f in fans])  # fmt: skip
    headers = _key(runtime)
    with live_server(create_app(runtime=runtime)) as url:
        got = burst(url, headers, [("POST", "/v1/interactions", {
            "user_id": f, "target_user_id": "star", "action": "like"}) for f in fans])  # fmt: skip
    record("50 likes on one person (PostgreSQL)", **got.figures())
    assert got.codes == {200: 50}, got.bodies[:3]
    likes = select(func.count()).select_from(Interaction).where(
        Interaction.target_user_id == "star", Interaction.action == "like")  # fmt: skip
    assert _count(runtime, likes) == 50
    # every fan is rated 1500 like the star was: 50 sequential likes give one exact rating
    settings = runtime.settings
    expected = np.full(2, settings.elo.initial)
    update(expected, np.zeros(50, dtype=int) + 1, np.zeros(50, dtype=int), ["like"] * 50,
           k_factor=settings.elo.k_factor)  # fmt: skip
    with runtime.session() as s:
        star = float(s.scalar(select(User.elo).where(User.id == "star")))
    assert star == pytest.approx(expected[0], abs=1e-6)


@pytest.mark.postgres
def test_fifty_pairs_liking_each_other_at_once_make_fifty_matches(pg_runtime: Runtime) -> None:
    runtime = pg_runtime
    pairs = [(f"w{i:02d}", f"m{i:02d}") for i in range(50)]
    with runtime.session() as s:
        upsert_users(s, [person(w) for w, _ in pairs]
                     + [person(m, gender="man", seeking=["woman"]) for _, m in pairs])  # fmt: skip
    headers = _key(runtime)
    requests = []
    for w, m in pairs:
        requests.append(
            ("POST", "/v1/interactions", {"user_id": w, "target_user_id": m, "action": "like"})
        )
        requests.append(
            ("POST", "/v1/interactions", {"user_id": m, "target_user_id": w, "action": "like"})
        )
    with live_server(create_app(runtime=runtime)) as url:
        got = burst(url, headers, requests)
    record("50 pairs of mutual likes at once (PostgreSQL)", **got.figures())
    assert got.codes == {200: 100}, got.bodies[:3]
    assert _count(runtime, select(func.count()).select_from(Match)) == 50
    assert sum(1 for b in got.bodies if b["match_created"]) == 50


# --- a burst on the embedded SQLite store ---------------------------------------------


def test_sqlite_takes_a_burst_of_writes_without_errors_or_stalled_reads(
    sqlite_url: str, tmp_path: Any
) -> None:
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"),
                        analytics_sample_rate=1.0)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    try:
        people = [f"p{i:03d}" for i in range(200)]
        with runtime.session() as s:
            upsert_users(s, [person("star")] + [person(p, gender="man") for p in people])
        headers = _key(runtime)
        reads: list[float] = []
        with live_server(create_app(runtime=runtime)) as url:
            stop = threading.Event()

            def read_while_writing() -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                    while not stop.is_set():
                        started = time.perf_counter()
                        assert client.get("/openapi.json").status_code == 200
                        assert client.get("/v1/recommendations",
                                          params={"user_id": "star", "kind": "user"}
                                          ).status_code == 200  # fmt: skip
                        reads.append(time.perf_counter() - started)

            reader = threading.Thread(target=read_while_writing)
            reader.start()
            writes = [
                (
                    "POST",
                    "/v1/interactions",
                    {"user_id": p, "target_user_id": "star", "action": "like"},
                )
                for p in people[:100]
            ]
            writes += [("POST", "/v1/users", {"users": [_user(f"new{i:03d}")]})
                       for i in range(100)]  # fmt: skip
            got = burst(url, headers, writes)
            stop.set()
            reader.join()
        record("200 concurrent writes (SQLite)", **got.figures(),
               slowest_read_ms=round(1000 * max(reads), 1), reads=len(reads))  # fmt: skip
        assert got.server_errors == 0, got.codes
        assert got.codes == {200: 200}
        assert _count(runtime, select(func.count()).select_from(User)) == 301
        # readers never waited for the writers: no read took seconds
        assert reads and max(reads) < 5.0, max(reads)
    finally:
        runtime.close()
