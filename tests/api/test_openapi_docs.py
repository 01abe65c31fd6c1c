"""The docs page works: the OpenAPI document declares how keys and tokens are sent (so
Swagger UI's Authorize button sends them), every parameter says what it is for, action
fields list the server's actions, and /docs and /redoc render from local assets only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matchwise.actions import DEFAULT_ACTION_TABLE, ActionRule
from matchwise.api import create_app
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings

OPEN = {"/healthz", "/readyz"}  # for load balancers: no key
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _client(url: str, tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    runtime = Runtime.open(
        Settings(database_url=url, artifact_root=str(tmp_path / "artifacts"), **settings),
        migrate=False,
    )
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            yield client
    finally:
        runtime.close()


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(sqlite_url, tmp_path)


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def test_every_guarded_operation_declares_the_key_schemes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header",
                                 "name": "X-API-Key"}  # fmt: skip
    operations = list(_operations(schema))
    assert len(operations) >= 12
    for method, path, operation in operations:
        if path in OPEN:
            assert "security" not in operation, path
        else:
            assert operation.get("security") == [{"bearer": []}, {"apiKey": []}], (method, path)


def test_a_key_sent_as_each_declared_scheme_is_accepted(
    client: TestClient, sqlite_url: str, tmp_path: Path
) -> None:
    """What the Authorize button does: it sends the key as the scheme says."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.session() as s:
        key, _ = create_key(s, "admin")
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    for name, scheme in schemes.items():
        if scheme["type"] == "http":
            headers = {"Authorization": f"{scheme['scheme'].title()} {key}"}
        else:
            headers = {scheme["name"]: key}
        assert client.get("/v1/admin/metrics", headers=headers).status_code == 200, name
    missing = client.get("/v1/admin/metrics")  # the guard's own answer, unchanged
    assert missing.status_code == 401
    assert missing.json()["message"] == (
        "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
    )
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/v1/admin/metrics", headers={"X-API-Key": "mw_nope"})
    assert (wrong.status_code, wrong.json()["message"]) == (401, "invalid or revoked API key")


def test_every_parameter_has_a_description(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    undocumented = [
        f"{method} {path} {parameter['in']} {parameter['name']}"
        for method, path, operation in _operations(schema)
        for parameter in operation.get("parameters", [])
        if not parameter.get("description", "").strip()
    ]
    assert undocumented == []
    assert any(
        parameter["in"] == "query"
        for _, _, operation in _operations(schema)
        for parameter in operation.get("parameters", [])
    )


def _action_fields(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "action" and isinstance(value, dict) and where.endswith("properties"):
                yield f"{where}/action", value
            yield from _action_fields(value, f"{where}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _action_fields(value, f"{where}[{n}]")


def test_action_fields_list_the_default_actions(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    fields = dict(_action_fields(schema))
    assert {"/components/schemas/InteractionIn/properties/action",
            "/components/schemas/Swipe/properties/action"} <= set(fields)  # fmt: skip
    for where, field in fields.items():
        assert field["enum"] == sorted(DEFAULT_ACTION_TABLE), where
        assert "matchwise.yaml" in field["description"], where
    for _, _, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "action":
                assert parameter["schema"]["enum"] == sorted(DEFAULT_ACTION_TABLE)


def test_a_custom_action_is_listed_and_accepted(sqlite_url: str, tmp_path: Path) -> None:
    """``actions:`` in matchwise.yaml adds an action: the server's schema lists it, and an
    event with it is stored."""
    bookmark = ActionRule(label=0.7, weight=1.0, positive=True)
    for client in _client(sqlite_url, tmp_path, actions={"bookmark": bookmark}, auth_enabled=False):
        fields = dict(_action_fields(client.get("/openapi.json").json()))
        assert fields and all("bookmark" in f["enum"] for f in fields.values())
        assert client.post("/v1/users", json={"users": [{"id": "u1"}]}).status_code == 200
        assert client.post("/v1/items", json={"items": [{"id": "i1"}]}).status_code == 200
        stored = client.post(
            "/v1/interactions", json={"user_id": "u1", "item_id": "i1", "action": "bookmark"}
        )
        assert (stored.status_code, stored.json()["written"]) == (200, 1)


def _references(html: str) -> list[str]:
    """Every URL a page loads or names: attributes, and quoted URLs in its scripts."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    quoted = re.findall(r"""["']((?:https?:)?//[^"']+|/[^"'\s]*)["']""", html)
    return sorted(set(attributes) | set(quoted))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert "http://" not in html and "https://" not in html and "//fonts." not in html
    references = _references(html)
    assert "/openapi.json" in references
    assets = [ref for ref in references if Path(ref).suffix in ASSET_TYPES]
    assert {Path(a).suffix for a in assets} >= ({".js", ".css", ".png"} if page == "/docs"
                                                else {".js", ".png"})  # fmt: skip
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert ASSET_TYPES[Path(asset).suffix] in loaded.headers["content-type"], asset
        assert len(loaded.content) > 1000, asset


def test_swagger_ui_is_a_version_that_reads_openapi_3_1(client: TestClient) -> None:
    """FastAPI writes OpenAPI 3.1; Swagger UI before 5 refuses to render it ("does not
    specify a valid version field")."""
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    html = client.get("/docs").text
    script = next(ref for ref in _references(html) if ref.endswith("swagger-ui-bundle.js"))
    bundle = client.get(script).text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version is not None and int(version.group(1)) >= 5
    assert "isOAS31" in bundle
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_the_document_has_no_tuple_schemas(client: TestClient) -> None:
    """A tuple's ``prefixItems`` trips OpenAPI tools (schemathesis read it as an invalid
    schema once a batch of events came back 200): pairs are arrays of two strings."""
    document = client.get("/openapi.json").text
    assert "prefixItems" not in document
    pairs = client.get("/openapi.json").json()["components"]["schemas"]["IngestResult"]
    assert pairs["properties"]["matches_created"]["items"] == {
        "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2,
    }  # fmt: skip
