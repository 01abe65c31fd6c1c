"""The first request after ready does what the hundredth does (issue 21 item 3): nothing
that a process builds once is left for it. FastAPI builds an included router's routes
(their parameter models and validators) on the first request reaching them; the start-up
primes them, so a people request right after ready builds no pydantic validator."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from matchwise.api import create_app
from matchwise.ingest.profiles import store_users
from matchwise.jobs.worker import Worker
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
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
