"""Erasure leaves nothing that identifies the person (store, Redis, text cache); old model
versions are pruned; the hashing secret is the deployment's own, kept across restarts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from matchwise import registry
from matchwise.api import create_app
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items
from matchwise.db import queries
from matchwise.db.tables import (
    AuditLog,
    Base,
    DeploymentSecret,
    Job,
    ModelVersion,
    OnlineOutbox,
    Recommendation,
    utcnow,
)
from matchwise.features.text import CACHE_FILE, TextEmbedder, text_cache_dir, text_key
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.jobs.queue import enqueue
from matchwise.jobs.worker import Worker
from matchwise.ops.auth import create_key
from matchwise.ops.moderation import flag_profile, report, resolve_flag
from matchwise.ops.privacy import erase_user, hash_id, tombstone_of
from matchwise.ops.safety import add_label
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, ItemIn, ReportIn
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.utils.factories import items_fixture, people_fixture, person

GONE = "erase-me-4821"
BIO = "Marathon runner who restores vintage typewriters above a bakery in Kreuzberg"
SHIPPED_SECRET = "matchwise-development-secret"


def _seed_person(runtime: Runtime) -> None:
    """GONE, written everywhere a person can be: events both ways, a match, reports both
    ways and about others, flags and a moderator's note, a label on their bio, jobs,
    the outbox, cached lists (theirs and others'), an item they own, the audit log."""
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_users(s, [person(GONE, gender="man", seeking=["woman"], age=31, bio=BIO,
                                name="Gone Person", email="gone@example.com")])  # fmt: skip
        upsert_items(s, [*items_fixture(), ItemIn(id="e9", title="Typewriter fair", owner_id=GONE)])
        ingest_events(s, [
            InteractionIn(user_id=GONE, target_user_id="alice", action="like"),
            InteractionIn(user_id="erin_woman", target_user_id=GONE, action="like"),
            InteractionIn(user_id=GONE, target_user_id="erin_woman", action="like"),  # a match
            InteractionIn(user_id="bob", target_user_id=GONE, action="pass"),
            InteractionIn(user_id=GONE, item_id="e1", action="click"),
        ], runtime.settings.action_table)  # fmt: skip
        for body in (ReportIn(reporter_id=GONE, reported_id="carl", reason="spam"),
                     ReportIn(reporter_id="ivan", reported_id=GONE, reason="scam"),
                     ReportIn(reporter_id="alice", reported_id="carl", reason="spam",
                              details=f"carl and {GONE} message me together")):  # fmt: skip
            report(s, body, runtime.settings, "key k1 (app)")
        flag = flag_profile(s, GONE, "classifier", {"spam_scam": 0.9})
        resolve_flag(s, flag.id, "approve", "key k2 (anna)", note=f"{GONE} looked fine")
        other = flag_profile(s, "carl", "classifier", {"spam_scam": 0.8})
        resolve_flag(s, other.id, "remove", "key k2 (anna)", note=f"same ring as {GONE}")
        add_label(s, BIO, "spam_scam", False, "key k2 (anna)")
        add_label(s, "send me bitcoin", "spam_scam", True, "key k2 (anna)")
        enqueue(s, "refresh_user", {"user_id": GONE}, dedupe_key=f"refresh_user:{GONE}")
        enqueue(s, "safety_scan", {"user_ids": ["alice", GONE]})
        done, _ = enqueue(s, "custom", {"note": "x"})
        done.status, done.result = "done", {"users": [GONE, "bob"], "last": GONE}
        s.add(
            OnlineOutbox(
                payload={
                    "hide": {"user": [GONE, "carl"]},
                    "seen": {"user": [["bob", GONE], ["alice", "carl"]]},
                }
            )
        )
        s.add(OnlineOutbox(payload={"hide": {"user": [GONE]}, "seen": {}}))  # fmt: skip
    refresh_users(runtime, ["alice", GONE], top_n=20, kind="user")
    with runtime.session() as s:
        listed = set(s.scalars(select(Recommendation.candidate_id)
                               .where(Recommendation.user_id == "alice")))  # fmt: skip
    assert GONE in listed  # GONE liked alice: in her list before the erasure


def _every_row(runtime: Runtime) -> str:
    """Every value of every table, as text."""
    out = []
    with runtime.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                out.append(f"{table.name}: " + json.dumps([str(v) for v in row]))
    return "\n".join(out)


def _embed_bios(runtime: Runtime) -> np.ndarray:
    """What serving does with bios: embed them into the store's text cache."""
    embedder = TextEmbedder(text_cache_dir(runtime.settings.artifact_root))
    vectors = embedder.embed([BIO, "Loves hiking and board games"])
    embedder.close()
    return vectors[0]


@pytest.fixture
def admin(runtime: Runtime) -> Iterator[TestClient]:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="privacy-officer")
    with TestClient(create_app(runtime=runtime)) as client:
        client.headers["X-API-Key"] = key
        yield client


def test_erasure_leaves_nothing_that_names_the_person(runtime: Runtime, admin: TestClient) -> None:
    _seed_person(runtime)
    vector = _embed_bios(runtime)
    before = _every_row(runtime)
    assert GONE in before and BIO in before

    answer = admin.delete(f"/v1/admin/users/{GONE}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tombstone"] == tombstone_of(runtime.settings.hash_secret, GONE)
    assert body["deleted"]["users"] == 1 and body["deleted"]["interactions"] >= 5
    assert body["deleted"]["matches"] == 1 and body["deleted"]["reports"] == 2
    assert body["deleted"]["jobs"] >= 1  # the refresh of their own list
    assert body["deleted"]["moderation_labels"] == 1 and body["deleted"]["online_outbox"] == 1
    assert body["scrubbed"]["audit_log"] >= 3 and body["scrubbed"]["items"] == 1
    assert body["text_cache"] == 1

    after = _every_row(runtime)
    for trace in (GONE, BIO, "Gone Person", "gone@example.com"):
        assert trace not in after, [line for line in after.splitlines() if trace in line]
    cache = Path(text_cache_dir(runtime.settings.artifact_root) or "") / CACHE_FILE
    with sqlite3.connect(cache) as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM vectors")}
    assert text_key(BIO) not in keys and len(keys) == 1  # the other bio stays cached
    on_disk = b"".join(p.read_bytes() for p in cache.parent.iterdir() if p.is_file())
    assert vector.astype(np.float32).tobytes() not in on_disk

    with runtime.session() as s:
        erasures = s.scalars(select(AuditLog).where(AuditLog.action == "user.erase")).all()
        outbox = [row.payload for row in s.scalars(select(OnlineOutbox))]
        kept_jobs = {j.job_type: j.payload for j in s.scalars(select(Job))}
    assert [(e.target, e.actor.startswith("privacy-officer")) for e in erasures] == [
        (body["tombstone"], True)
    ]
    assert outbox == [{"hide": {"user": ["carl"]}, "seen": {"user": [["alice", "carl"]]}}]
    assert kept_jobs["safety_scan"] == {"user_ids": ["alice"]} and "refresh_user" not in kept_jobs
    assert GONE not in _served(runtime, "alice") and "bob" in _served(runtime, "alice")

    again = admin.delete(f"/v1/admin/users/{GONE}")
    assert again.status_code == 404 and "already erased" in again.json()["message"]
    unknown = admin.delete("/v1/admin/users/nobody-at-all")
    assert unknown.status_code == 404 and "nothing to erase" in unknown.json()["message"]


def _served(runtime: Runtime, user_id: str) -> set[str]:
    with runtime.session() as s:
        result = recommend(runtime, s, user_id, limit=50, kind="user")
    return {r.candidate_id for r in result.recommendations}


def test_erasure_needs_an_admin_key(runtime: Runtime, admin: TestClient) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        ingest_key, _ = create_key(s, "ingest")
    refused = admin.delete("/v1/admin/users/bob", headers={"X-API-Key": ingest_key})
    assert refused.status_code == 403
    with runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(Base.metadata.tables["users"])) == 9


def test_erasure_clears_redis(runtime: Runtime, redis_url: str) -> None:
    online = Runtime.open(runtime.settings.model_copy(update={"redis_url": redis_url}),
                          migrate=False)  # fmt: skip
    try:
        _seed_person(online)
        refresh_users(online, ["alice", "bob", "erin_woman", GONE], top_n=20, kind="user")
        with online.session() as s:
            flag_profile(s, GONE, "classifier", {"spam_scam": 0.95})  # GONE in the hidden set
            passed = InteractionIn(user_id="ivan", target_user_id=GONE, action="pass")
            ingest_events(s, [passed], online.settings.action_table)
        client = redis.Redis.from_url(redis_url)
        dump = _redis_dump(client)
        assert GONE in dump

        out = erase_user(online, GONE, "cli")
        assert out["online_keys"] > 0
        dump = _redis_dump(client)
        assert GONE not in dump and BIO not in dump, dump
        client.close()
    finally:
        online.close()


def _redis_dump(client: redis.Redis) -> str:
    """Every key of the test Redis with what it holds, as text."""
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value: Any = (client.get(key) if kind == "string" else
                      sorted(client.smembers(key)) if kind == "set" else kind)  # fmt: skip
        out.append(f"{key!r}: {value!r}")
    return "\n".join(out)


def test_users_erase_on_the_command_line(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    runtime = Runtime.open(Settings(), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
    runtime.close()

    def run(argv: list[str]) -> int:
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert run(["users", "erase", "bob", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deleted"] == {"users": 1}
    assert run(["users", "erase", "bob"]) == 2
    assert "already erased" in capsys.readouterr().err


# --- model retention ------------------------------------------------------------------


def _version(runtime: Runtime, tmp_path: Path, name: str, age_days: int) -> str:
    folder = tmp_path / "trained" / name
    folder.mkdir(parents=True)
    (folder / "weights.npz").write_bytes(name.encode() * 100)  # stands for a like/pass graph
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as s:
        row = registry.register(s, store, "ease", folder, version=name)
        s.execute(update(ModelVersion).where(ModelVersion.id == row.id)
                  .values(created_at=utcnow() - timedelta(days=age_days)))  # fmt: skip
        return row.id


def test_old_model_versions_are_pruned_with_their_artifacts(
    runtime: Runtime, tmp_path: Path
) -> None:
    ages = {"v1": 90, "v2": 80, "v3": 70, "v4": 60, "v5": 5}
    ids = {name: _version(runtime, tmp_path, name, age) for name, age in ages.items()}
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as s:
        for name in ("v1", "v3", "v4"):  # v4 active, v3 before it (the rollback)
            registry.activate_version(s, store, ids[name])
    with runtime.session() as s:
        enqueue(s, "retention", {})
    done = Worker(runtime).run_once()
    assert done is not None and done.status == "done", done and done.last_error
    assert done.result["models_pruned"] == 2
    with runtime.session() as s:
        kept = {v.version: v.is_active for v in s.scalars(select(ModelVersion))}
        pruned = {e.details["version"] for e in s.scalars(
            select(AuditLog).where(AuditLog.action == "model.prune"))}  # fmt: skip
    assert kept == {"v3": False, "v4": True, "v5": False}  # active, previous, young
    assert pruned == {"v1", "v2"}
    for name in ("v1", "v2", "v3", "v4", "v5"):
        exists = (Path(runtime.settings.artifact_root) / "models" / "ease" / name).exists()
        assert exists is (name in kept)
    with runtime.session() as s:  # the rollback still has its version
        assert registry.rollback(s, store, "ease").version == "v3"


def _warm_user(runtime: Runtime) -> str:
    """A user with 5-20 interactions: the router serves them the active items model."""
    with runtime.session() as s:
        for i in range(60):
            history = queries.user_history(s, f"u{i}")
            if 5 <= int((history["action"] != "impression").sum()) <= 20:
                return f"u{i}"
    raise AssertionError("no warm user in the bundle")


# --- the hashing secret ---------------------------------------------------------------


def test_each_store_has_its_own_secret_never_the_shipped_one(
    sqlite_url: str, sqlite_template: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(sqlite_template.read_bytes())
    first = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    second = Runtime.open(Settings(database_url=f"sqlite:///{other}"), migrate=False)
    secrets = {first.settings.hash_secret, second.settings.hash_secret}
    first.close()
    second.close()
    assert len(secrets) == 2 and SHIPPED_SECRET not in secrets
    assert all(len(secret) >= 32 for secret in secrets)
    explicit = Runtime.open(Settings(database_url=sqlite_url, hash_secret=SHIPPED_SECRET),
                            migrate=False)  # fmt: skip
    assert explicit.settings.hash_secret != SHIPPED_SECRET  # the public default is refused
    explicit.close()


def test_an_operators_secret_is_kept(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHWISE_HASH_SECRET", "operator-chosen-secret")
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    assert runtime.settings.hash_secret == "operator-chosen-secret"
    with runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(DeploymentSecret)) == 0
    runtime.close()


def test_a_restart_keeps_the_secret_and_models_find_their_users(
    runtime: Runtime, db_url: str
) -> None:
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=60, n_items=50, n_interactions=2000, seed=4, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    trained = train_model(runtime, "ease", domain="items", activate="always")
    secret = runtime.settings.hash_secret
    user = _warm_user(runtime)
    # a new process: a runtime of its own, fresh settings, nothing loaded
    fresh = Settings(database_url=db_url, artifact_root=runtime.settings.artifact_root)
    again = Runtime.open(fresh, migrate=False)
    try:
        assert again.settings.hash_secret == secret
        with again.session() as s:
            served = recommend(again, s, user, limit=10, kind="item", use_cache=False,
                               filters=RecommendFilters(include_past=True))  # fmt: skip
            stored = s.scalar(select(DeploymentSecret.value))
        assert served.route == "warm" and served.model_version == trained.version
        assert stored == secret and hash_id(secret, user) != hash_id(SHIPPED_SECRET, user)
    finally:
        again.close()
