"""API keys: every route but /healthz, /readyz and the docs checks its scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.db.tables import ApiKey
from matchwise.ops.auth import create_key, revoke_key
from matchwise.runtime import Runtime

OPEN = {"/healthz", "/readyz", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}


@pytest.fixture
def keys(runtime: Runtime) -> dict[str, str]:
    out = {}
    with runtime.session() as s:
        for scope in ("ingest", "read", "admin"):
            out[scope], _ = create_key(s, scope)
    return out


@pytest.fixture
def app_client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every documented route: the OpenAPI schema is the list a client sees."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path) for path, ops in paths.items() if path not in OPEN for method in ops
    )


def _needed(path: str, method: str) -> str:
    if path.startswith("/v1/admin") or method == "DELETE":  # erasure: admin (or oneself)
        return "admin"
    return "ingest" if method == "POST" and path != "/v1/safety/classify" else "read"


def test_open_routes_stay_open(app_client: TestClient) -> None:
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/openapi.json").status_code == 200
    assert app_client.get("/docs").status_code == 200


def test_every_route_checks_its_scope(app_client: TestClient, keys: dict[str, str]) -> None:
    routes = _routes(app_client)
    assert len(routes) >= 5
    for method, path in routes:
        url = path.replace("{", "").replace("}", "")
        missing = app_client.request(method, url, json={})
        assert missing.status_code == 401, (method, path)
        assert "missing API key" in missing.json()["message"]
        needed = _needed(path, method)
        for scope, key in keys.items():
            r = app_client.request(method, url, json={}, headers={"X-API-Key": key})
            if scope == "admin" or scope == needed:
                assert r.status_code not in (401, 403), (method, path, scope)
            else:
                assert r.status_code == 403, (method, path, scope)
                assert f"needs {needed!r}" in r.json()["message"]


def test_bearer_and_revocation(runtime: Runtime, app_client: TestClient) -> None:
    with runtime.session() as s:
        key, row = create_key(s, "read")
        stored = s.scalars(select(ApiKey.key_hash)).all()
    assert key not in stored  # only the hash is kept
    headers = {"Authorization": f"Bearer {key}"}
    assert app_client.get("/v1/recommendations?user_id=x", headers=headers).status_code == 404
    with runtime.session() as s:
        revoke_key(s, row.id)
    app_client.app.state.key_cache.clear()
    r = app_client.get("/v1/recommendations?user_id=x", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    wrong = {"Authorization": "Bearer mw_not_a_key"}
    assert app_client.get("/v1/recommendations?user_id=x", headers=wrong).status_code == 401
