"""The API and the CLI do the same thing for the same action, because both call one
service function: a profile written either way queues the safety scan, and an
interaction recorded either way queues the refresh of its user's cached list."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise import registry
from matchwise.api import create_app
from matchwise.cli.app import main
from matchwise.db.tables import Job
from matchwise.ingest.profiles import upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.utils.factories import people_fixture, person


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"))
    runtime = Runtime.open(settings, migrate=False)
    folder = tmp_path / "safety-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"a registered safety model")
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        registry.register(s, registry.ArtifactStore(runtime.settings.artifact_root), "safety",
                          folder, activate=True)  # fmt: skip
    return runtime


def _jobs(runtime: Runtime, job_type: str) -> list[dict]:
    with runtime.read_session() as s:
        rows = s.scalars(select(Job).where(Job.job_type == job_type).order_by(Job.id))
        return [dict(j.payload) for j in rows]


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_profiles_from_the_api_and_from_a_file_both_queue_the_safety_scan(
    store: Runtime, tmp_path: Path
) -> None:
    with store.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    with TestClient(create_app(runtime=store)) as client:
        body = {"users": [person("api_1").model_dump(mode="json"),
                          person("api_2").model_dump(mode="json")]}  # fmt: skip
        assert client.post("/v1/users", json=body,
                           headers={"X-API-Key": key}).status_code == 200  # fmt: skip
    profiles = tmp_path / "people.csv"
    pd.DataFrame({"id": ["file_1", "file_2"], "age": [30, 31], "bio": ["hi", "hello"]}).to_csv(
        profiles, index=False
    )
    assert _cli(["load", "profiles", str(profiles)]) == 0
    scanned = [sorted(p["user_ids"]) for p in _jobs(store, "safety_scan")]
    assert ["api_1", "api_2"] in scanned and ["file_1", "file_2"] in scanned


def test_an_interaction_from_the_api_and_from_the_cli_both_queue_the_refresh(
    store: Runtime,
) -> None:
    with store.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    with TestClient(create_app(runtime=store)) as client:
        swipe = {"user_id": "alice", "target_user_id": "bob", "action": "like"}
        answer = client.post("/v1/interactions", json=swipe, headers={"X-API-Key": key})
        assert answer.status_code == 200 and answer.json()["refresh_enqueued"] is True
    assert _cli(["interact", "--user-id", "carl", "--target", "alice", "--action", "like"]) == 0
    refreshed = {p["user_id"] for p in _jobs(store, "refresh_user")}
    assert refreshed == {"alice", "carl"}
