"""Batch scoring with Ray: a real local Ray (two CPUs) refreshes the cache in parallel
tasks and writes exactly what the serial refresh writes, on SQLite and on PostgreSQL (the
store a cluster shares: each task opens a connection of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from matchwise import registry
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.errors import ConfigError, NotFound
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.scale import CHUNK, LAST_CHUNK, chunk_sizes, refresh_with_ray
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from matchwise.train.retrain import retrain

ray = pytest.importorskip("ray")


def _trained_store(url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=120, n_items=80, n_interactions=4000, seed=11, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    train_model(runtime, "ease", domain="items", activate="always")
    yield runtime
    runtime.close()


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    yield from _trained_store(db_url, tmp_path)


def _cache(runtime: Runtime) -> dict[str, list[tuple[str, int, float]]]:
    with runtime.session() as s:
        rows = s.execute(
            select(
                CachedRow.user_id,
                CachedRow.candidate_id,
                CachedRow.rank,
                CachedRow.score,
                CachedRow.route,
            ).order_by(CachedRow.user_id, CachedRow.rank)  # fmt: skip
        ).all()
    out: dict[str, list[tuple[str, int, float]]] = {}
    for user, candidate, rank, score, route in rows:
        out.setdefault(user, []).append((candidate, rank, round(score, 5)))
        assert route in {"cold", "warm", "hot", "fallback"}
    return out


def _same_lists(got: dict, expected: dict) -> None:
    """Same users, candidates and scores; a Ray worker's BLAS may sum in another order, so
    scores agree to 1e-4 and near-ties may swap ranks."""
    assert got.keys() == expected.keys()
    for user, rows in expected.items():
        mine = got[user]
        assert {c for c, _, _ in mine} == {c for c, _, _ in rows}, user
        assert [r for _, r, _ in mine] == [r for _, r, _ in rows]
        np.testing.assert_allclose(sorted(s for *_, s in mine), sorted(s for *_, s in rows),
                                   atol=1e-4)  # fmt: skip


def test_ray_refresh_writes_what_the_serial_refresh_writes(store: Runtime) -> None:

    serial = refresh_users(store, None, top_n=8, kind="item")
    expected = _cache(store)
    with store.session() as s:
        s.query(CachedRow).delete()
    seen: list[int] = []
    stats = refresh_with_ray(store, None, top_n=8, kind="item", num_cpus=2, chunk_size=25,
                             progress=seen.append)  # fmt: skip
    assert stats["users"] == serial["users"] == 120
    assert stats["rows"] == serial["rows"]
    assert stats["tasks"] == 5 and sum(seen) == 120
    _same_lists(_cache(store), expected)
    assert not ray.is_initialized()  # the local Ray it started is stopped again


def test_ray_refresh_refuses_unknown_users(store: Runtime) -> None:

    with pytest.raises(NotFound, match="nobody"):
        refresh_with_ray(store, ["u1", "nobody"], num_cpus=1)


def test_ray_refuses_a_remote_cluster_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:

    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    with pytest.raises(ConfigError, match="shared store"):
        refresh_with_ray(runtime, None, address="ray://10.0.0.1:10001")
    runtime.close()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)  # the store a Ray deployment shares; Ray on SQLite is covered above (Ray starts take ~5 s)
def test_cli_refresh_with_ray(
    store: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", store.settings.database_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", store.settings.artifact_root)
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    try:
        main(["refresh", "--ray", "--kind", "item", "--top-n", "5"])
    except SystemExit as exc:
        assert not exc.code
    assert "refreshed 120 users" in capsys.readouterr().out
    assert sum(len(v) for v in _cache(store).values()) == 120 * 5


def test_retrain_with_ray_trains_each_model_in_its_own_task(store: Runtime) -> None:
    outcome, activated = retrain(store, ["logistic", "popularity"], domain="items", ray=True)
    assert set(outcome) == {"logistic", "popularity"}
    assert activated and all(o["activated"] for o in outcome.values())
    with store.session() as s:
        for name in ("logistic", "popularity"):
            active = registry.active_version(s, name)
            assert active is not None and active.version == outcome[name]["version"]
    again, activated_again = retrain(store, ["popularity"], domain="items", ray=True)
    assert not activated_again  # the same data cannot beat the active version
    assert again["popularity"]["reason"].startswith(f"kept {outcome['popularity']['version']}")
    assert not ray.is_initialized()


@pytest.mark.parametrize("total,workers", [(1_000_000, 2), (149, 2), (7, 4), (20_001, 1)])
def test_chunks_shrink_towards_the_end_so_actors_finish_together(total: int, workers: int) -> None:
    sizes = chunk_sizes(total, workers)
    assert sum(sizes) == total and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)  # never a big chunk after a small one
    assert max(sizes) <= CHUNK
    # every worker gets work, and what is left once the last chunk is handed out is at
    # most a block (or a quarter of a worker's share, for a small refresh)
    assert len(sizes) >= min(workers, total)
    assert sizes[-1] <= LAST_CHUNK and sizes[-1] <= -(-total // (4 * workers))
    if total == 1_000_000:  # full chunks while plenty is left, then shrinking ones
        assert sizes[:40] == [CHUNK] * 40 and sizes[-2] == LAST_CHUNK
        assert len(sizes) < 80


def test_no_users_no_chunks() -> None:
    assert chunk_sizes(0, 2) == []
