"""``GET /v1/recommendations`` is called straight after its guard: the router-level scope
dependency (and its two security schemes) only declares what the guard already checked,
so FastAPI does not resolve it on every request; the OpenAPI document is the same as when
it was resolved, and the route answers as before (401, 403, 422, 200)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastapi.routing
import orjson
import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app, deps
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.moderation import people_client


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with people_client(runtime) as c:
        yield c


def test_the_openapi_document_is_the_same_as_with_the_declarations_resolved(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = orjson.dumps(create_app(runtime=runtime).openapi(), option=orjson.OPT_SORT_KEYS)
    monkeypatch.setattr(deps, "calls_straight", lambda route: False)
    resolved = orjson.dumps(create_app(runtime=runtime).openapi(), option=orjson.OPT_SORT_KEYS)
    assert straight == resolved
    operation = orjson.loads(straight)["paths"]["/v1/recommendations"]["get"]
    assert {name for s in operation["security"] for name in s} == {"bearer", "apiKey"}


def test_no_dependency_is_resolved_for_a_recommendation(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.session() as s:
        read, _ = create_key(s, "read")
        ingest, _ = create_key(s, "ingest")
    solved: list[Any] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs.get("dependant"))
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    answer = client.get("/v1/recommendations?user_id=alice", headers={"X-API-Key": read})
    assert answer.status_code == 200 and answer.json()["user_id"] == "alice"
    assert solved == [], "FastAPI resolved the route's dependencies on a request"
    # the guard still answers as before, and bad parameters are still a 422
    assert client.get("/v1/recommendations?user_id=alice").status_code == 401
    wrong = client.get("/v1/recommendations?user_id=alice", headers={"X-API-Key": ingest})
    assert wrong.status_code == 403 and "needs 'read'" in wrong.json()["message"]
    bad = client.get("/v1/recommendations?user_id=alice&limit=0", headers={"X-API-Key": read})
    assert bad.status_code == 422
    # a route with parameters of its own is still resolved by FastAPI
    matches = client.get("/v1/users/alice/matches", headers={"X-API-Key": read})
    assert matches.status_code == 200
    assert solved, "routes with their own parameters are no longer resolved"
