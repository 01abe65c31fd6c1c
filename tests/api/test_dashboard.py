"""The dashboard over HTTP (FastAPI's TestClient, both stores): the login stores a signed,
secure, HTTP-only, SameSite=Strict session and never the key; logout ends it; a read key,
a forged cookie and a revoked key are refused; a POST without the CSRF token or from
another site changes nothing; every page renders with real data; activate and roll back
change the active version and the audit log names the key; approve resolves a flag; no
page or asset points outside the server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.api.dashboard.session import COOKIE
from matchwise.data.synthetic import generate_items
from matchwise.db.tables import (
    AuditLog,
    Interaction,
    Item,
    ModelVersion,
    ModerationFlag,
    User,
    utcnow,
)
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.queue import enqueue
from matchwise.ops import experiments
from matchwise.ops.auth import create_key, revoke_key
from matchwise.ops.moderation import file_report, flag_profile
from matchwise.runtime import Runtime
from matchwise.schemas import ExperimentIn
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

PAGES = ("/dashboard", "/dashboard/models", "/dashboard/experiments", "/dashboard/explorer",
         "/dashboard/moderation", "/dashboard/jobs")  # fmt: skip
BIO = "Send me a gift card at scam-line 555 and I'll meet you"


@dataclass
class Store:
    runtime: Runtime
    old: str  # registry ids: the first version, then the active one
    new: str
    key: str
    key_id: str
    user: str
    item: str


def stocked(db_url: str, tmp_path: Path) -> Store:
    """Events over the last weeks, two EASE versions (the second active), every list
    cached, a running experiment, a flagged profile with a report, a queued job."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "artifacts"),
                        analytics_sample_rate=1.0)  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=40)
    bundle = generate_items(n_users=40, n_items=30, n_interactions=1500, seed=7, start=start,
                            days=40, kind="startup")  # fmt: skip
    write_bundle(runtime, bundle, settings.action_table)
    old = train_model(runtime, "ease", activate="always").version
    new = train_model(runtime, "ease", activate="always").version
    refresh_users(runtime, None, top_n=10)
    with runtime.session() as session:
        ids = {v: session.scalar(select(ModelVersion.id).where(ModelVersion.version == v))
               for v in (old, new)}  # fmt: skip
        users = list(session.scalars(select(User.id).order_by(User.id).limit(3)))
        item = session.scalar(select(Item.id).order_by(Item.id))
        session.get(User, users[2]).bio = BIO
        flag_profile(session, users[2], "safety", {"scam": 0.93}, actor="tests")
        file_report(session, users[0], users[2], "scam", "asked me for gift cards")
        enqueue(session, "retention", {})
        key, row = create_key(session, "admin", name="dash")
        spec = {"name": "ease-ab", "arms": [{"name": "control"},
                                            {"name": "old", "model_version": old}]}  # fmt: skip
        experiments.create(session, settings, ExperimentIn.model_validate(spec), "tests")
        key_id = row.id
    return Store(runtime, str(ids[old]), str(ids[new]), key, key_id, users[0], str(item))


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    made = stocked(db_url, tmp_path)
    yield made
    made.runtime.close()


def client(runtime: Runtime) -> TestClient:
    """A browser-like client over https (the session cookie is Secure)."""
    return TestClient(create_app(runtime=runtime), base_url="https://testserver",
                      follow_redirects=False)  # fmt: skip


def login(c: TestClient, key: str) -> None:
    response = c.post("/dashboard/login", data={"key": key})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"


def csrf(c: TestClient, page: str = "/dashboard/models") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', c.get(page).text)
    assert found is not None
    return found.group(1)


def active(runtime: Runtime) -> str:
    with runtime.read_session() as session:
        return str(session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True))))


def test_login_keeps_a_signed_session_not_the_key_and_logout_ends_it(store: Store) -> None:
    with client(store.runtime) as c:
        assert c.get("/dashboard").headers["location"] == "/dashboard/login"
        response = c.post("/dashboard/login", data={"key": store.key})
        cookie = response.headers["set-cookie"]
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/dashboard"} <= flags
        value = cookie.split(";")[0].split("=", 1)[1]
        assert store.key not in value and store.key[3:20] not in value
        page = c.get("/dashboard")
        assert page.status_code == 200 and "dash (key " in page.text  # who is logged in
        assert page.headers["cache-control"] == "no-store"
        c.post("/dashboard/logout", data={"csrf": csrf(c)})
        assert c.get("/dashboard").status_code == 303  # the cookie is gone
        copied = {"Cookie": f"{COOKIE}={value}"}
        assert c.get("/dashboard", headers=copied).status_code == 200  # a copy lives until it
        with store.runtime.session() as session:  # expires, or until its key is revoked
            revoke_key(session, store.key_id)
        assert c.get("/dashboard", headers=copied).status_code == 303


def test_read_keys_wrong_keys_and_forged_cookies_are_refused(store: Store) -> None:
    with store.runtime.session() as session:
        read_key, _ = create_key(session, "read")
    with client(store.runtime) as c:
        for key in (read_key, "mw_not-a-key", ""):
            response = c.post("/dashboard/login", data={"key": key})
            assert response.status_code == 401 and COOKIE not in response.headers.get(
                "set-cookie", ""
            )
        forged = {"Cookie": f"{COOKIE}=eyJrIjoieCIsImUiOjk5OTk5OTk5OTksImMiOiJ4In0.forged"}
        for page in (*PAGES, f"/dashboard/models/{store.old}/report"):
            assert c.get(page, headers=forged).headers.get("location") == "/dashboard/login"
        response = c.post(f"/dashboard/models/{store.old}/activate", data={"csrf": "x"},
                          headers=forged)  # fmt: skip
        assert response.status_code == 303 and active(store.runtime) == store.new


def test_posts_without_the_csrf_token_or_from_another_site_change_nothing(store: Store) -> None:
    with client(store.runtime) as c:
        login(c, store.key)
        token = csrf(c)
        path = f"/dashboard/models/{store.old}/activate"
        assert c.post(path).status_code == 403
        assert c.post(path, data={"csrf": token + "x"}).status_code == 403
        evil = {"Origin": "https://evil.example"}
        assert c.post(path, data={"csrf": token}, headers=evil).status_code == 403
        assert c.post("/dashboard/login", data={"key": store.key}, headers=evil).status_code == 403
        assert active(store.runtime) == store.new
        ok = c.post(path, data={"csrf": token}, headers={"Origin": "https://testserver"})
        assert ok.status_code == 303 and active(store.runtime) == store.old


def test_every_page_renders_with_the_stores_data(store: Store) -> None:
    with client(store.runtime) as c:
        login(c, store.key)
        overview = c.get("/dashboard").text
        assert overview.count('<svg class="chart"') == 5
        assert 'class="current"' in overview and 'class="previous"' in overview
        for name in ("users", "items", "interactions", "matches", "active models"):
            assert f'<span class="label">{name}</span>' in overview
        assert '<span class="value">40</span><span class="label">users</span>' in overview
        assert c.get("/dashboard?days=7").text.count('<svg class="chart"') == 5

        models = c.get("/dashboard/models").text
        assert models.count("<tr data-version=") == 2 and "model.activate" in models
        detail = c.get(f"/dashboard/models/{store.old}").text
        assert "ndcg@10" in detail and f"/dashboard/models/{store.old}/report" in detail
        report = c.get(f"/dashboard/models/{store.old}/report")
        assert report.status_code == 200 and "data:image/png;base64," in report.text
        assert "img-src data:" in report.headers["content-security-policy"]
        both = c.get(f"/dashboard/models/compare?a={store.old}&b={store.new}").text
        assert "Difference" in both and both.count('<iframe class="report"') == 2

        exps = c.get("/dashboard/experiments").text
        assert 'data-experiment="ease-ab"' in exps and "Sample ratio" in exps
        assert "Online metrics per model version" in exps

        user = c.get(f"/dashboard/explorer?user={store.user}").text
        assert user.count('<table class="recs"') == 2  # as served and live
        assert "Recent history" in user and re.search(r"model [+-]\d\.\d{3}", user)
        assert "email" not in user and "latitude" not in user  # private fields stay out
        item = c.get(f"/dashboard/explorer?item={store.item}").text
        assert "Similar items" in item and "Recommended to" in item
        person = c.get(f"/dashboard/explorer?person={store.user}").text
        assert "Similar people" in person
        assert "No user nobody" in c.get("/dashboard/explorer?user=nobody").text

        queue = c.get("/dashboard/moderation").text
        assert BIO.replace("'", "&#39;") in queue and "asked me for gift cards" in queue
        assert "scam 0.93" in queue
        jobs = c.get("/dashboard/jobs").text
        assert "retention" in jobs and "Schema revision" in jobs and "Not configured" in jobs


def test_activate_and_roll_back_change_what_is_active_and_name_the_key(store: Store) -> None:
    with client(store.runtime) as c:
        login(c, store.key)
        done = c.post(f"/dashboard/models/{store.old}/activate", data={"csrf": csrf(c)})
        assert done.status_code == 303 and "message=" in done.headers["location"]
        assert active(store.runtime) == store.old
        page = c.get(done.headers["location"]).text
        assert "is now active" in page
        c.post("/dashboard/models/rollback", data={"csrf": csrf(c), "model_type": "ease"})
        assert active(store.runtime) == store.new
        with store.runtime.read_session() as session:
            entries = session.scalars(select(AuditLog).where(AuditLog.actor.like("dash (key %"))
                                      .order_by(AuditLog.id)).all()  # fmt: skip
        assert [e.action for e in entries] == ["model.activate", "model.activate", "model.rollback"]
        assert all(e.actor == f"dash (key {store.key_id})" for e in entries)
        bad = c.post("/dashboard/models/rollback", data={"csrf": csrf(c), "model_type": "nope"})
        assert "error=" in bad.headers["location"]


def test_approve_and_remove_resolve_flags_in_the_audit_trail(store: Store) -> None:
    with client(store.runtime) as c:
        login(c, store.key)
        with store.runtime.read_session() as session:
            flag = session.scalar(select(ModerationFlag))
            assert flag is not None
            flag_id, held = flag.id, flag.user_id
        c.post(f"/dashboard/moderation/{flag_id}", data={"csrf": csrf(c), "decision": "approve"})
        with store.runtime.read_session() as session:
            assert session.get(ModerationFlag, flag_id).status == "approved"
            assert session.get(User, held).moderation_status == "ok"
        page = c.get("/dashboard/moderation").text
        assert "The queue is empty" in page and "moderation.approve" in page
        again = c.post(f"/dashboard/moderation/{flag_id}",
                       data={"csrf": csrf(c), "decision": "remove"})  # fmt: skip
        assert "already+resolved" in again.headers["location"].replace("%20", "+")


URL = re.compile(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//"""
                 r"""|url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//|@import""", re.I)  # fmt: skip


def test_no_page_or_asset_reaches_outside_the_server(store: Store) -> None:
    with client(store.runtime) as c:
        assert not URL.search(c.get("/dashboard/login").text)
        login(c, store.key)
        pages = [*PAGES, f"/dashboard/explorer?user={store.user}",
                 f"/dashboard/explorer?item={store.item}", f"/dashboard/models/{store.old}",
                 f"/dashboard/models/{store.old}/report",
                 f"/dashboard/models/compare?a={store.old}&b={store.new}"]  # fmt: skip
        for page in pages:
            text = c.get(page).text
            assert not URL.search(text), (page, URL.search(text))
            assert "http://" not in text and "https://" not in text, page
        static = files("matchwise.api.dashboard") / "static"
        for asset in static.iterdir():
            body = c.get(f"/dashboard/static/{asset.name}")
            assert body.status_code == 200
            assert "http" not in body.text and not URL.search(body.text), asset.name


def test_without_keys_the_login_asks_for_nothing(settings: Settings) -> None:
    settings.auth_enabled = False
    runtime = Runtime.open(settings, migrate=False)
    try:
        with client(runtime) as c:
            assert 'name="key"' not in c.get("/dashboard/login").text
            assert c.post("/dashboard/login", data={}).status_code == 303
            page = c.get("/dashboard/models")
            assert page.status_code == 200 and "unauthenticated" in page.text
            assert (
                c.post("/dashboard/models/rollback", data={"model_type": "ease"}).status_code == 403
            )
    finally:
        runtime.close()


def _interactions_this_period(c: TestClient) -> int:
    page = c.get("/dashboard").text
    found = re.search(r'data-series="interactions".*?this period ([\d,]+)', page, re.S)
    assert found is not None
    return int(found.group(1).replace(",", ""))


def test_the_overview_counts_todays_events_at_once(store: Store) -> None:
    """Past days are reused for a few minutes; today's events are read on every render."""
    with client(store.runtime) as c:
        login(c, store.key)
        before = _interactions_this_period(c)
        with store.runtime.session() as session:
            session.add(Interaction(event_id="dash-today", user_id=store.user, item_id=store.item,
                                    action="click", occurred_at=utcnow()))  # fmt: skip
        assert _interactions_this_period(c) == before + 1


def test_promote_and_stop_act_on_the_experiment(store: Store) -> None:
    with client(store.runtime) as c:
        login(c, store.key)
        token = csrf(c, "/dashboard/experiments")
        done = c.post("/dashboard/experiments/ease-ab/promote", data={"csrf": token, "arm": "old"})
        assert "message=" in done.headers["location"]
        assert active(store.runtime) == store.old  # the arm's version now serves
        again = c.post("/dashboard/experiments/ease-ab/stop", data={"csrf": token})
        assert "error=" in again.headers["location"]  # promoted: nothing to stop
        with store.runtime.read_session() as session:
            actors = set(session.scalars(select(AuditLog.actor).where(
                AuditLog.action.in_(["experiment.promote", "model.activate"]),
                AuditLog.actor.like("dash%"))))  # fmt: skip
        assert actors == {f"dash (key {store.key_id})"}
        assert "promoted" in c.get("/dashboard/experiments").text
