"""Live items requests are computed on the API's event loop once everything they need is
loaded (``live_on_event_loop``): the same lists as in a worker thread, and a worker
thread whenever the request might load, wait on the store or write — the serving state
not loaded (after an activation), an experiment running, people lists, or the setting
off. On PostgreSQL (``always``) the request's reads are awaited on the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.data.synthetic import generate_items
from matchwise.db import queries
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops import experiments as ops_experiments
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import ExperimentIn
from matchwise.serve import tiers
from matchwise.serve.state import reset_serving_state, serving_state
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.utils.factories import items_fixture, people_fixture

USERS = [f"u{n}" for n in range(0, 40, 2)]


def _store(tmp_path: Path, **settings: Any) -> Runtime:
    runtime = Runtime.open(Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}",
                                    artifact_root=str(tmp_path / "art"), **settings))  # fmt: skip
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_items(n_users=40, n_items=60, n_interactions=1000, seed=8, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    train_model(runtime, "two_tower", domain="items", activate="always")
    return runtime


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Runtime]:
    runtime = _store(tmp_path)
    yield runtime
    runtime.close()


def _where_live_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each live computation's place: on the event loop, or in a worker thread."""
    places: list[str] = []
    real = tiers.live

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            places.append("event loop")
        except RuntimeError:
            places.append("thread")
        return real(*args, **kwargs)

    monkeypatch.setattr(tiers, "live", spy)
    return places


def _client(runtime: Runtime) -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    client = TestClient(create_app(runtime=runtime))
    client.headers["X-API-Key"] = key
    return client


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)


def _live(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    query = {"user_id": user, "limit": 10, "fresh": "true", **params}
    response = client.get("/v1/recommendations", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def _comparable(body: dict[str, Any]) -> list[tuple]:
    """A served list's route, version and candidates (the JSON, or a computed list's)."""
    return [(body["route"], body["model_version"])] + [
        (r["candidate_id"], r["score"], r["rank"], r["reason"], r["title"])
        for r in body["recommendations"]
    ]


def test_a_loaded_server_computes_live_items_on_the_event_loop_with_the_same_lists(
    store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    places = _where_live_runs(monkeypatch)
    with _client(store) as client:
        _ready(client)
        _live(client, "u1")  # may run in a thread: it reads the experiments book
        del places[:]
        served = {user: _live(client, user) for user in USERS}
    assert places == ["event loop"] * len(USERS)
    assert {b["route"] for b in served.values()} >= {"warm", "hot"}  # the model served
    for user, body in served.items():  # what the worker thread computes, as before
        again = tiers.live(store, user, 10, None, RecommendFilters())
        wire = {"route": again.route, "model_version": again.model_version,
                "recommendations": [r.wire() for r in again.recommendations]}  # fmt: skip
        assert _comparable(body) == _comparable(wire)


def test_a_request_that_may_load_or_write_runs_in_a_worker_thread(
    store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    places = _where_live_runs(monkeypatch)
    with _client(store) as client:
        _ready(client)
        _live(client, "u1")
        _live(client, "u2")
        assert places[-1] == "event loop"
        # an activation in this process: the next request switches versions (a load)
        serving_state(store).invalidate()
        assert not serving_state(store).items_loaded()
        _live(client, "u3")
        assert places[-1] == "thread"
        _live(client, "u4")
        assert places[-1] == "event loop"  # loaded again by the request before
        # people lists may load the people catalogue for a new profile
        _live(client, "u5", kind="user")
        assert places[-1] == "thread"
        # an experiment running: an interleaved list is written down
        other = train_model(store, "ease", domain="items", activate="never").version
        with store.session() as s:
            ops_experiments.create(
                s, store.settings,
                ExperimentIn.model_validate({
                    "name": "loop", "salt": "loop-salt",
                    "arms": [{"name": "control"}, {"name": "treat", "model_version": other}],
                }),
                actor="tests",
            )  # fmt: skip
        tiers.experiment_book(store).invalidate()
        for user in ("u6", "u7"):
            _live(client, user)
            assert places[-1] == "thread"


def test_the_setting_off_keeps_live_requests_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _store(tmp_path, live_on_event_loop=False)
    places = _where_live_runs(monkeypatch)
    try:
        with _client(runtime) as client:
            _ready(client)
            for user in USERS[:5]:
                _live(client, user)
    finally:
        runtime.close()
    assert places == ["thread"] * 5


def test_postgresql_live_items_run_in_a_worker_thread_with_sqlite_only(
    postgres_url: str, pg_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``live_on_event_loop: sqlite``: on PostgreSQL every live request goes to a worker
    thread (its reads block there, not on the loop)."""
    with pg_runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    asked = Settings(database_url=postgres_url, live_on_event_loop="sqlite",
                     artifact_root=str(tmp_path / "art2"))  # fmt: skip
    runtime = Runtime.open(asked, migrate=False)
    places = _where_live_runs(monkeypatch)
    try:
        with _client(runtime) as client:
            _ready(client)
            for _ in range(3):
                assert _live(client, "alice", kind="item")["recommendations"]
    finally:
        runtime.close()
    assert places == ["thread"] * 3


def test_postgresql_live_items_run_on_the_loop_by_default_with_their_reads_awaited(
    postgres_url: str, pg_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``always`` (the default): the profile and history are read on the API's async
    connections, awaited (the loop serves others meanwhile; nothing blocks it on the
    network), and the list computed on the loop is the one a worker thread computes."""
    assert pg_runtime.settings.live_on_event_loop == "always"
    with pg_runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    asked = Settings(database_url=postgres_url, artifact_root=str(tmp_path / "art2"))
    runtime = Runtime.open(asked, migrate=False)
    places = _where_live_runs(monkeypatch)
    awaited: list[str] = []
    real = queries.serving_inputs_awaited

    async def counted(reads: Any, user_id: str) -> Any:
        awaited.append(user_id)
        return await real(reads, user_id)

    monkeypatch.setattr(queries, "serving_inputs_awaited", counted)
    try:
        with _client(runtime) as client:
            _ready(client)
            _live(client, "alice", kind="item")  # may read the experiments book, in a thread
            places.clear()
            awaited.clear()
            lists = [_live(client, "alice", kind="item") for _ in range(3)]
            served = list(places)
        in_thread = tiers.live(runtime, "alice", 10, "item", RecommendFilters())
    finally:
        runtime.close()
    assert served == ["event loop"] * 3 and awaited == ["alice"] * 3  # no blocking read
    wire = {"route": in_thread.route, "model_version": in_thread.model_version,
            "recommendations": [r.wire() for r in in_thread.recommendations]}  # fmt: skip
    assert all(_comparable(x) == _comparable(wire) for x in lists)
    assert lists[0]["recommendations"]


def test_items_loaded_needs_the_catalogue_the_models_and_a_fresh_registry_check(
    store: Runtime,
) -> None:
    reset_serving_state(store)
    state = serving_state(store)
    assert not state.items_loaded()  # nothing asked yet
    with store.read_session() as session:
        assert state.serving(session, "warm")  # the registry asked, the model loaded
        assert not state.items_loaded()  # the catalogue is not in yet
        state.catalogue(session)
    assert state.items_loaded()
    state.check_seconds = 0.0  # the registry's answer is old: a request would ask again
    assert not state.items_loaded()
