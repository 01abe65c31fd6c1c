"""API clients the tests share (a moderator's, one on a store of people) and a held
profile."""

from __future__ import annotations

from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.ingest.profiles import upsert_users
from matchwise.ops.auth import create_key
from matchwise.ops.moderation import flag_profile
from matchwise.runtime import Runtime
from tests.utils.factories import people_fixture


def moderator_client(runtime: Runtime) -> TestClient:
    """An API client holding a new admin key (server errors come back as answers)."""
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="moderator")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def hold(runtime: Runtime, user_id: str) -> int:
    """Hold ``user_id`` for review as the safety scan would; returns the flag's id."""
    with runtime.session() as s:
        return flag_profile(s, user_id, "classifier", {"spam_scam": 0.97}).id


def people_client(runtime: Runtime) -> TestClient:
    """An API client (no key) on ``runtime`` with the people fixture stored; use it as a
    context manager so the app's lifespan runs."""
    with runtime.session() as s:
        upsert_users(s, people_fixture())
    return TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
