"""The server as an attacker meets it: slow connections are closed, answers carry the
right headers and no banner, server errors say what failed with a request id and never
an internal (host, port, password, path), and one profile cannot be megabytes."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.cli.app import main
from matchwise.db.engine import create_engine_for
from matchwise.errors import ArtifactError
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.utils.live_server import live_server

SLOW = {"http_header_timeout_seconds": 1.0, "http_body_idle_timeout_seconds": 1.0,
        "http_body_timeout_seconds": 2.0}  # fmt: skip


@pytest.fixture
def strict(settings: Settings) -> Iterator[tuple[Runtime, str]]:
    runtime = Runtime.open(settings.model_copy(update=SLOW), migrate=False)
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="tests")
    yield runtime, key
    runtime.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reading whatever it sends)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_slow_headers_and_slow_bodies_are_cut_off(strict: tuple[Runtime, str]) -> None:
    runtime, key = strict
    with live_server(create_app(runtime=runtime)) as url:
        port = int(url.rsplit(":", 1)[1])
        slow_headers = socket.create_connection(("127.0.0.1", port))
        slow_headers.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stalled_body = socket.create_connection(("127.0.0.1", port))
        stalled_body.sendall(b"POST /v1/users HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Bearer " + key.encode() + b"\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                             b'{"users": [')  # fmt: skip
        trickle = socket.create_connection(("127.0.0.1", port))
        trickle.sendall(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
        cut = False
        for _ in range(10):  # a byte every half second: never idle, but never done
            try:
                trickle.sendall(b" ")
            except OSError:  # the server hung up on it
                cut = True
                break
            time.sleep(0.5)
        assert cut or _closed_within(trickle, 1), "a trickling body kept the connection"
        assert _closed_within(slow_headers, 5), "slow headers kept the connection"
        assert _closed_within(stalled_body, 5), "a stalled body kept the connection"
        with httpx.Client(base_url=url) as client:  # the server itself is fine
            assert client.get("/healthz").status_code == 200
        for sock in (slow_headers, stalled_body, trickle):
            sock.close()


def test_answers_carry_safe_headers_and_no_banner(strict: tuple[Runtime, str]) -> None:
    runtime, key = strict
    with live_server(create_app(runtime=runtime)) as url, httpx.Client(base_url=url) as client:
        mine = client.get("/v1/admin/moderation", headers={"Authorization": f"Bearer {key}",
                                                           "X-Request-ID": "trace-42"})  # fmt: skip
        anonymous = client.get("/v1/admin/moderation")
        health = client.get("/healthz")
    assert "server" not in mine.headers
    assert mine.headers["x-request-id"] == "trace-42"
    for answer in (mine, anonymous):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert len(health.headers["x-request-id"]) == 16  # made up when none (or a bad one) is sent


def test_server_errors_name_what_failed_with_a_request_id_and_no_internals(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime=runtime)

    @app.get("/broken-model")
    def broken_model() -> None:
        raise ArtifactError("model artifact at /srv/secret/models/ease-1 is missing")

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("internals at /srv/secret")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.INFO):
        for path, words in (("/broken-model", "a model or its files"), ("/bug", "internal")):
            answer = client.get(path)
            body = answer.json()
            assert answer.status_code == 500
            assert words in body["message"] and "secret" not in answer.text
            assert body["request_id"] == answer.headers["x-request-id"]
            assert body["request_id"] in body["message"]
            assert any(body["request_id"] in r.getMessage() and "secret" in r.getMessage()
                       for r in caplog.records)  # fmt: skip


@pytest.mark.postgres
def test_an_unreachable_store_says_so_without_host_port_or_password(
    postgres_url: str, tmp_path: Any
) -> None:
    settings = Settings(database_url=postgres_url, artifact_root=str(tmp_path / "a"))
    plain = Runtime.open(settings, migrate=False)
    dead = create_engine_for("postgresql+psycopg://mw:hunter2@127.0.0.1:9/gone", "read",
                             pool_timeout=1, connect_args={"connect_timeout": 2})  # fmt: skip
    runtime = Runtime(settings, plain.engine, dead)
    try:
        with runtime.session() as s:
            key, _ = create_key(s, "admin", name="tests")
        runtime.online = None
        app = create_app(runtime=runtime)
        app.state.key_cache.scope_of(plain.read_session, key)  # known, so auth needs no store
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get("/v1/admin/moderation", headers={"Authorization": f"Bearer {key}"})
    finally:
        dead.dispose()
        plain.close()
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    for secret in ("hunter2", "127.0.0.1", ":9", "psycopg", "gone"):
        assert secret not in answer.text, secret


def test_the_cli_never_prints_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", "postgresql://mw:hunter2@127.0.0.1:9/gone")
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["db", "upgrade"])
    assert exited.value.code == 1
    printed = capsys.readouterr()
    assert "cannot open the store" in printed.err
    assert "hunter2" not in printed.err + printed.out
    assert "mw:***@" in printed.err


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"photo_embeddings": [[0.5] * 512] * 21}, "photo_embeddings"),
        ({"photo_embeddings": [[0.5] * 2049]}, "photo_embeddings"),
        ({"attributes": {f"k{n}": n for n in range(101)}}, "attributes"),
        ({"attributes": {"essay": "x" * 40_000}}, "attributes"),
        ({"seeking": [f"g{n}" for n in range(17)]}, "seeking"),
    ],
)
def test_one_profile_cannot_be_megabytes(
    strict: tuple[Runtime, str], profile: dict[str, Any], field: str
) -> None:
    runtime, key = strict
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        answer = client.post("/v1/users", json={"users": [{"id": "big", **profile}]},
                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 422 and field in answer.json()["message"]
