"""Shared fixtures: a fresh store per test on SQLite and on a real PostgreSQL server.

PostgreSQL comes from ``scripts/pg-test-server.sh`` (Debian's packages, loopback, port
55432), started here when ``MATCHWISE_TEST_DATABASE_URL`` is not set. Under CI
(``CI=true``) a PostgreSQL that cannot start fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from matchwise.db.engine import create_engine_for, upgrade
from matchwise.db.tables import Base
from matchwise.runtime import Runtime
from matchwise.settings import Settings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"
MOVIELENS_100K = SHARED_DATA / "movielens-100k"
PG_SCRIPT = ROOT / "scripts" / "pg-test-server.sh"
REDIS_SCRIPT = ROOT / "scripts" / "redis-test-server.sh"


def _server_url(env: str, script: Path, what: str) -> str | None:
    """The URL in ``env``, or the one ``script start`` prints (it installs and starts the
    server); None when that fails outside CI."""
    url = os.environ.get(env)
    if url:
        return url
    try:
        out = subprocess.run(
            ["bash", str(script), "start"], capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _unavailable(f"cannot run {script}: {exc}", what)
    if out.returncode != 0:
        return _unavailable(f"{script} failed: {out.stderr.strip()[-500:]}", what)
    url = out.stdout.strip().splitlines()[-1]
    os.environ[env] = url
    return url


def _postgres_url() -> str | None:
    return _server_url("MATCHWISE_TEST_DATABASE_URL", PG_SCRIPT, "PostgreSQL")


def _unavailable(reason: str, what: str) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"{what} tests cannot run: {reason}")
    return None


def _redis_url() -> str | None:
    return _server_url("MATCHWISE_TEST_REDIS_URL", REDIS_SCRIPT, "Redis")


@pytest.fixture
def redis_url() -> str:
    """A real Redis server (``scripts/redis-test-server.sh``), emptied for each test."""
    url = _redis_url()
    if url is None:
        pytest.skip("Redis test server unavailable")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = _postgres_url()
    if url is None:
        pytest.skip("PostgreSQL test server unavailable")
    engine = create_engine_for(url)
    with engine.begin() as conn:  # start from nothing: the migrations build everything
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(url: str) -> None:
    engine = create_engine_for(url)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean, migrated store: every store/ingest/API test runs on both backends."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "matchwise.db"
        shutil.copy(template, target)
        yield f"sqlite:///{target}"
    else:
        url = request.getfixturevalue("postgres_url")
        _truncate_all(url)
        yield url


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean SQLite store, for tests whose subject is not the backend."""
    template = request.getfixturevalue("sqlite_template")
    target = tmp_path / "matchwise.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # Sampling off by default in tests so counts are exact; sampling has its own tests.
    return Settings(
        database_url=db_url, artifact_root=str(tmp_path / "artifacts"), analytics_sample_rate=1.0
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings, migrate=False)
    yield rt
    rt.close()


@pytest.fixture
def pg_runtime(postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A clean PostgreSQL store only: for concurrency that SQLite serialises anyway."""
    _truncate_all(postgres_url)
    rt = Runtime.open(
        Settings(database_url=postgres_url, artifact_root=str(tmp_path / "artifacts")),
        migrate=False,
    )
    yield rt
    rt.close()
