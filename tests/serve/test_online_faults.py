"""Redis faults against a real redis-server of the test's own, paused with SIGSTOP (hung,
not refusing) as a network partition or a stalled server would leave it.

- A hiding made while Redis cannot be reached (a partition, through a TCP relay the test
  cuts) is never lost: the outbox delivers it when
  Redis answers again, and until then the hidden candidate is never served from Redis.
- A hung Redis does not slow every request: short timeouts and a circuit breaker send
  reads to the database cache, and Redis is used again once it answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from matchwise.api import create_app
from matchwise.db.online import hidden_key
from matchwise.db.tables import OnlineOutbox
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from tests.conftest import REDIS_SCRIPT
from tests.utils.drills import record
from tests.utils.factories import items_fixture, people_fixture
from tests.utils.live_server import free_port
from tests.utils.tcp_proxy import TcpProxy

pytestmark = pytest.mark.drill
PARAMS = {"user_id": "alice", "kind": "item", "limit": 10}


class PrivateRedis:
    """A redis-server of this test alone, started by the project's script."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "MATCHWISE_TEST_REDIS_PORT": str(self.port),
                    "MATCHWISE_TEST_REDIS_DIR": str(folder)}  # fmt: skip
        started = subprocess.run(["bash", str(REDIS_SCRIPT), "start"], env=self.env,
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        if started.returncode != 0:
            if os.environ.get("CI"):
                raise RuntimeError(f"redis-server did not start: {started.stderr[-500:]}")
            pytest.skip("redis-server unavailable")
        self.url = started.stdout.strip().splitlines()[-1]
        self.pid = int((folder / "redis.pid").read_text().strip())

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        subprocess.run(["bash", str(REDIS_SCRIPT), "stop"], env=self.env, timeout=60)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop()


def _open(settings: Settings, redis_url: str) -> Runtime:
    fast = {"redis_url": redis_url, "redis_timeout_ms": 100, "redis_cooldown_seconds": 1.0}
    return Runtime.open(settings.model_copy(update=fast), migrate=False)


def _client(runtime: Runtime, key: str) -> TestClient:
    client = TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _ids(client: TestClient) -> tuple[str, list[str]]:
    body = client.get("/v1/recommendations", params=PARAMS).json()
    return body["route"], [r["candidate_id"] for r in body["recommendations"]]


def _outbox(runtime: Runtime) -> int:
    with runtime.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(OnlineOutbox)) or 0)


def _wait(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _seed(runtime: Runtime) -> str:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        key, _ = create_key(s, "admin", name="tests")
    refresh_users(runtime, ["alice"], top_n=10, kind="item")
    return key


@pytest.fixture
def seeded(settings: Settings, private_redis: PrivateRedis) -> Iterator[tuple[Runtime, str]]:
    runtime = _open(settings, private_redis.url)
    key = _seed(runtime)
    yield runtime, key
    runtime.close()


@pytest.fixture
def partitionable(private_redis: PrivateRedis) -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", private_redis.port)
    yield proxy
    proxy.close()


def test_a_hiding_made_while_redis_is_unreachable_is_never_lost(
    settings: Settings, private_redis: PrivateRedis, partitionable: TcpProxy
) -> None:
    url = f"redis://127.0.0.1:{partitionable.port}/0"
    runtime, other = _open(settings, url), _open(settings, url)  # two API processes
    direct = redis.Redis.from_url(private_redis.url)
    off = next(i for i in items_fixture() if i.id == "e1").model_copy(update={"active": False})
    try:
        key = _seed(runtime)
        with _client(runtime, key) as writer, _client(other, key) as bystander:
            assert _ids(writer) == ("cache", ["e1", "e2", "e4"])
            partitionable.partition()
            answer = writer.post("/v1/items", json={"items": [off.model_dump(mode="json")]})
            assert answer.status_code == 200  # stored, whatever Redis does
            assert _outbox(runtime) == 1  # Redis did not get it: kept
            assert not direct.sismember(hidden_key("item"), "e1")
            for client in (writer, bystander):
                assert "e1" not in _ids(client)[1]
            time.sleep(2.5)  # the outbox row is now older than a writer's own delivery
            partitionable.heal()  # Redis is reachable, with the list that still shows e1
            seen = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _outbox(runtime):
                seen += [_ids(writer)[1], _ids(bystander)[1]]
                time.sleep(0.05)
            assert _outbox(runtime) == 0, "the pump did not deliver the outbox"
            assert all("e1" not in ids for ids in seen)
            assert direct.sismember(hidden_key("item"), "e1")
            with runtime.session() as s:  # the database copy gone: Redis alone answers
                s.execute(delete(CachedRow))
            for client in (writer, bystander):
                assert _wait(lambda c=client: _ids(c)[0] == "cache", 10)  # breaker closed
                assert _ids(client) == ("cache", ["e2", "e4"])
    finally:
        partitionable.heal()
        direct.close()
        runtime.close()
        other.close()


def test_a_hung_redis_does_not_slow_every_request(
    seeded: tuple[Runtime, str], private_redis: PrivateRedis
) -> None:
    runtime, key = seeded
    with _client(runtime, key) as client:
        reader = client.app.state.online_reader  # type: ignore[attr-defined]
        assert _ids(client) == ("cache", ["e1", "e2", "e4"])
        tried = reader.attempts
        private_redis.pause()
        try:
            started = time.perf_counter()
            answers = [client.get("/v1/recommendations", params=PARAMS) for _ in range(30)]
            seconds = time.perf_counter() - started
        finally:
            private_redis.resume()
        store = runtime.engine.dialect.name
        record(f"30 cached reads with Redis hung (SIGSTOP, {store})", requests=30,
               codes={200: sum(a.status_code == 200 for a in answers)},
               seconds=round(seconds, 3), redis_attempts=reader.attempts - tried)  # fmt: skip
        assert all(a.status_code == 200 and a.json()["route"] == "cache" for a in answers)
        # three timeouts open the breaker; one trial per cool-down second after that
        # (without the breaker every one of the 30 requests would try Redis)
        assert reader.attempts - tried <= 3 + int(seconds) + 1
        with runtime.session() as s:  # only Redis can answer "cache" now
            s.execute(delete(CachedRow))
        assert _wait(lambda: _ids(client)[0] == "cache", 10)  # Redis used again
