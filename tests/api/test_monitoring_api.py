"""``GET /v1/admin/monitoring`` (both stores): the request shares per route are the
requests this process answered, they add up to 1, the drift of the served version is
there; ``stored=true`` is the monitoring job's snapshot (404 before its first run); the
route is admin-only. ``matchwise monitor --json`` prints the same snapshot."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items
from matchwise.db.tables import User
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import Worker
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    """Events, EASE trained and active, every user's list cached; a newcomer with no history."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "artifacts"),
                        analytics_sample_rate=1.0)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_items(n_users=40, n_items=30, n_interactions=1200, seed=6, start=start,
                            kind="startup")  # fmt: skip
    write_bundle(runtime, bundle, settings.action_table)
    version = train_model(runtime, "ease", activate="always").version
    refresh_users(runtime, None, top_n=20)
    with runtime.session() as session:
        session.add(User(id="newcomer"))
    yield runtime, version
    runtime.close()


def _client(runtime: Runtime, scope: str = "admin") -> TestClient:
    with runtime.session() as s:
        key, _ = create_key(s, scope, name="tests")
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _monitoring(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/admin/monitoring", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_route_shares_are_the_requests_made(served: tuple[Runtime, str]) -> None:
    runtime, version = served
    with runtime.read_session() as session:
        users = list(session.scalars(select(User.id).where(User.id != "newcomer")
                                     .order_by(User.id).limit(6)))  # fmt: skip
    asks = [{"user_id": u} for u in users]  # cached lists
    asks += [{"user_id": u, "fresh": "true"} for u in users[:3]]  # live: the user's tier
    asks += [{"user_id": "newcomer"}] * 2  # no history: cold
    with _client(runtime) as client:
        routes = []
        for params in asks:
            response = client.get("/v1/recommendations", params=params)
            assert response.status_code == 200, response.text
            routes.append(response.json()["route"])
        body = _monitoring(client)
    made = Counter(routes)
    assert {"cache", "cold"} <= set(made) and len(made) >= 3
    requests = body["routes"]["requests"]
    assert requests["counts"] == dict(made)
    assert requests["total"] == len(asks)
    assert sum(requests["shares"].values()) == pytest.approx(1)
    assert requests["shares"]["cold"] == pytest.approx(2 / len(asks))
    (drift,) = [d for d in body["drift"] if d["model_version"] == version]
    assert drift["available"] and {f["feature"] for f in drift["features"]} >= {"score"}
    assert body["coverage"]["item"]["catalogue"] == 30
    assert body["freshness"]["lists"] >= 40


def test_the_stored_snapshot_is_the_jobs(served: tuple[Runtime, str]) -> None:
    runtime, _ = served
    with _client(runtime) as client:
        missing = client.get("/v1/admin/monitoring", params={"stored": "true"})
        assert missing.status_code == 404
        assert "monitoring job" in missing.json()["message"]
        with runtime.session() as session:
            enqueue(session, "monitoring", {"window_days": 3})
        assert Worker(runtime, schedules={}, kinds=["monitoring"]).run(until_idle=True) == 1
        stored = _monitoring(client, stored="true")
        assert stored["window_days"] == 3
        assert stored["routes"]["requests"]["total"] == 0  # the worker answers no requests
        assert _monitoring(client, window_days=5)["window_days"] == 5
        assert client.get("/v1/admin/monitoring", params={"window_days": 0}).status_code == 422


def test_monitoring_is_for_admin_keys(served: tuple[Runtime, str]) -> None:
    runtime, _ = served
    with _client(runtime, "read") as client:
        assert client.get("/v1/admin/monitoring").status_code == 403


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_matchwise_monitor_json(
    served: tuple[Runtime, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    runtime, version = served
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", runtime.settings.artifact_root)
    monkeypatch.setenv("MATCHWISE_MONITORING__COVERAGE_MIN", "0.99")
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    assert _run(["monitor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["window_days"] == 7
    assert version in {d["model_version"] for d in out["drift"]}
    assert "coverage.item.cache" in {f["metric"] for f in out["flags"]}
    assert _run(["monitor"]) == 0
    printed = capsys.readouterr().out
    assert f"drift of {version}" in printed and "coverage.item.cache" in printed
    assert _run(["monitor", "--stored"]) == 2  # no job has run: said, exit 2
    assert _run(["monitor", "--window-days", "0"]) == 2
