"""/healthz tells the truth: degraded while an active model cannot load, ok once the
background retry has loaded it; a failed load is never retried inside a request."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from matchwise import registry
from matchwise.api import create_app
from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.state import ServingState, reset_serving_state
from matchwise.serve.types import RecommendationList, RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import TrainResult, train_model


def _open(url: str, tmp_path: Path) -> Runtime:
    settings = Settings(database_url=url, artifact_root=str(tmp_path / "art"),
                        analytics_sample_rate=1.0)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=150, n_items=120, n_interactions=6000, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    return runtime


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = _open(db_url, tmp_path)
    yield runtime
    runtime.close()


def _artifact(runtime: Runtime, result: TrainResult) -> Path:
    with runtime.session() as s:
        return Path(registry.get_version(s, result.version).uri)


def _serve(runtime: Runtime, user: str) -> RecommendationList:
    with runtime.session() as s:
        return recommend(runtime, s, user, limit=5, kind="item",
                         filters=RecommendFilters(include_past=True), use_cache=False)  # fmt: skip


def _warm_user(runtime: Runtime) -> str:
    """A user the model routes serve (not a cold one)."""
    for i in range(150):
        if _serve(runtime, f"u{i}").route != "cold":
            return f"u{i}"
    raise AssertionError("no warm user")


def test_healthz_is_degraded_while_an_active_model_cannot_load(store: Runtime) -> None:
    result = train_model(store, "ease", domain="items", activate="always")
    weights = _artifact(store, result) / "ease.npz"
    intact = weights.read_bytes()
    weights.write_bytes(b"corrupt")
    reset_serving_state(store)  # a fresh process: the API's warm-up meets the corrupt artifact
    with TestClient(create_app(runtime=store)) as client:
        deadline = time.monotonic() + 60  # the warm-up runs in the background
        while client.get("/readyz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/readyz").status_code == 200  # ready: what fails loads lazily
        answer = client.get("/healthz")
        assert answer.status_code == 200  # still alive: liveness probes must not restart it
        body = answer.json()
        assert body["status"] == "degraded" and body["revision"] != "none"
        [failed] = body["failed_models"]
        assert failed["model_type"] == "ease" and failed["version"] == result.version
        assert failed["serving"] == "fallback" and "checksum" in failed["error"]
        user = _warm_user(store)
        served = _serve(store, user)  # the route healthz names is the one that answers
        assert served.route == "fallback"

        weights.write_bytes(intact)  # repaired: no request has to load it
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        body = client.get("/healthz").json()
        assert body == {"status": "ok", "revision": body["revision"], "failed_models": []}
        served = _serve(store, user)
        assert served.route in ("warm", "hot") and served.model_version == result.version


def test_a_failed_load_is_retried_in_the_background_not_in_requests(
    sqlite_url: str, tmp_path: Path
) -> None:
    runtime = _open(sqlite_url, tmp_path)
    result = train_model(runtime, "ease", domain="items", activate="always")
    folder = _artifact(runtime, result)
    moved = folder.with_name("away")
    folder.rename(moved)  # a missing artifact
    state = ServingState(registry.ArtifactStore(runtime.settings.artifact_root),
                         check_seconds=0.0, retry_seconds=3600.0)  # fmt: skip
    try:
        with runtime.session() as s:
            assert state.model(s, "ease") is None  # the first load fails: None, no error
        assert state.failures()["ease"].attempts == 1
        moved.rename(folder)
        for _ in range(5):  # requests keep checking the registry but never load again
            with runtime.session() as s:
                assert state.model(s, "ease") is None
        assert state.failures()["ease"].attempts == 1
        assert state.serving_instead("ease") == "fallback"

        quick = ServingState(registry.ArtifactStore(runtime.settings.artifact_root),
                             check_seconds=0.0, retry_seconds=0.2)  # fmt: skip
        folder.rename(moved)
        with runtime.session() as s:
            assert quick.model(s, "ease") is None
        moved.rename(folder)
        deadline = time.monotonic() + 60
        while quick.failures() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not quick.failures()  # the background retry loaded it
        with runtime.session() as s:
            loaded = quick.model(s, "ease")
        assert loaded is not None and loaded.version == result.version
        quick.close()
    finally:
        state.close()
        if moved.exists():
            shutil.move(str(moved), str(folder))
        runtime.close()
